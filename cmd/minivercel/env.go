package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"minivercel/deploy"
	"minivercel/internal/dotenv"
	"minivercel/internal/tabular"
	"minivercel/secret"
)

const envUsage = `usage:
  minivercel env set <project> KEY=VALUE... [--target production|preview|all]
  minivercel env unset <project> KEY... [--target production|preview]
  minivercel env list <project>
  minivercel env import <project> FILE|- [--target ...]     a .env file
Values are encrypted at rest and masked in listings and logs. A change takes
effect on the next deploy; "minivercel deploy redeploy <project>" restarts the
live deployment with the new values without a rebuild.`

// openKeyring loads the master key: MINIVERCEL_MASTER_KEY, else the key file in
// the data directory.
func openKeyring(c *common) (*secret.Keyring, error) {
	dir, err := c.absDataDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return secret.LoadKeyring(os.Getenv("MINIVERCEL_MASTER_KEY"), filepath.Join(dir, "master.key"))
}

func envCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var target *string
	verb, fs, db, svc, err := openVerb(ctx, "env", args, verbs{"set": {2, -1}, "unset": {2, -1}, "list": {1, 1}, "import": {2, 2}}, envUsage, stderr,
		func(fs *flag.FlagSet) {
			target = fs.String("target", "", "production, preview or all (set and import default to all; unset defaults to every target)")
		})
	if err != nil {
		return err
	}
	defer db.Close()
	project := fs.Arg(0)
	switch verb {
	case "list":
		list, err := svc.Vars(ctx, project)
		if err != nil {
			return err
		}
		return tabular.Print(stdout, list,
			fmt.Sprintf("%s has no variables; set one with: minivercel env set %s KEY=VALUE", project, project),
			"KEY\tTARGET\tVALUE\tUPDATED", func(v secret.Var) []any { return []any{v.Name, v.Target, v.Masked, v.UpdatedAt} })
	case "unset":
		for _, name := range fs.Args()[1:] {
			if err := svc.UnsetVar(ctx, deploy.Operator, project, name, *target); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "unset %s\n", name)
		}
		return nil
	}
	var pairs []string
	if verb == "set" {
		pairs = fs.Args()[1:]
	} else {
		r := stdin
		if fs.Arg(1) != "-" {
			f, err := os.Open(fs.Arg(1))
			if err != nil {
				return fmt.Errorf("open %s: %w", fs.Arg(1), err)
			}
			defer f.Close()
			r = f
		}
		if pairs, err = dotenv.Parse(r); err != nil {
			return err
		}
	}
	vars := make([]deploy.Var, 0, len(pairs))
	for _, pair := range pairs {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return usageError{fmt.Sprintf("%q is not KEY=VALUE", truncate(pair, 40))}
		}
		vars = append(vars, deploy.Var{Key: k, Value: v})
	}
	res, err := svc.SetVars(ctx, deploy.Operator, project, *target, vars)
	if err != nil {
		return err
	}
	for _, r := range res {
		verb := "updated"
		if r.Created {
			verb = "set"
		}
		fmt.Fprintf(stdout, "%s %s\n", verb, r.Key)
	}
	fmt.Fprintf(stdout, "takes effect on the next deploy (or now: minivercel deploy redeploy %s)\n", project)
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
