package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"

	"minivercel/deploy"
	"minivercel/internal/tabular"
	"minivercel/nodes"
	"minivercel/schema"
	"minivercel/secret"
)

const adminUsage = `usage:
  minivercel admin key add [--user NAME] [--name LABEL] KEY|-
  minivercel admin key list
  minivercel admin key remove ID|FINGERPRINT
  minivercel admin user set-password NAME [--password-stdin]
  minivercel admin token create [--user NAME] [--name LABEL]
  minivercel admin token list
  minivercel admin token revoke ID
  minivercel admin rotate-key
  minivercel admin nodes`

func admin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) >= 1 && args[0] == "rotate-key" {
		return rotateKey(ctx, args[1:], stdout, stderr)
	}
	if len(args) >= 1 && args[0] == "nodes" {
		return listNodes(ctx, args[1:], stdout, stderr)
	}
	if len(args) < 2 {
		return usageError{adminUsage}
	}
	cmd := args[0] + " " + args[1]
	fs, c := subcommand("admin "+cmd, stderr)
	userName := fs.String("user", deploy.AdminUser, "user the key or token belongs to")
	label := fs.String("name", "", "a label for the key or token")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from standard input instead of the terminal")
	if err := parseFlags(fs, args[2:], os.Getenv); err != nil {
		return err
	}
	nargs := map[string]int{"key add": -1, "key list": 0, "key remove": 1, "user set-password": 1,
		"token create": 0, "token list": 0, "token revoke": 1}
	n, ok := nargs[cmd]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q\n%s", "admin "+cmd, adminUsage)}
	}
	if (n >= 0 && fs.NArg() != n) || (n < 0 && fs.NArg() == 0) {
		return usageError{fmt.Sprintf("wrong arguments for admin %s\n%s", cmd, adminUsage)}
	}
	if _, err := c.logger(stderr); err != nil {
		return err
	}
	// Read the password before touching the database, so a typo in the
	// prompt costs nothing.
	var password string
	if cmd == "user set-password" {
		var err error
		if password, err = readPassword(stdin, stderr, *passwordStdin); err != nil {
			return err
		}
	}
	db, svc, err := c.openService(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	op := deploy.Operator
	switch cmd {
	case "key add":
		return addKeys(ctx, svc, strings.Join(fs.Args(), " "), *userName, *label, stdin, stdout)
	case "key list":
		return listKeys(ctx, svc, stdout)
	case "key remove":
		k, err := svc.RemoveKey(ctx, op, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed key %d %s of %s\n", k.ID, k.Fingerprint, k.UserName)
	case "user set-password":
		u, err := svc.SetPassword(ctx, op, fs.Arg(0), password)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password set for %s\n", u.Name)
	case "token create":
		token, t, err := svc.CreateToken(ctx, op, *userName, *label)
		if err != nil {
			return err
		}
		// The token goes alone to stdout so scripts can capture it; it is not
		// stored and cannot be shown again.
		fmt.Fprintf(stderr, "created token %d for %s; it is shown once:\n", t.ID, t.UserName)
		fmt.Fprintln(stdout, token)
	case "token list":
		tokens, err := svc.Tokens(ctx, op)
		if err != nil {
			return err
		}
		return tabular.Print(stdout, tokens, "no tokens; create one with: minivercel admin token create --name ci",
			"ID\tUSER\tNAME\tCREATED\tLAST USED\tREVOKED", func(t schema.APIToken) []any {
				return []any{t.ID, t.UserName, t.Name, tabular.When(t.CreatedAt), tabular.TimeOr(t.LastUsedAt, "never"), tabular.TimeOr(t.RevokedAt, "-")}
			})
	case "token revoke":
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil {
			return usageError{fmt.Sprintf("token id %q is not a number", fs.Arg(0))}
		}
		if err := svc.RevokeToken(ctx, op, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked token %d\n", id)
	}
	return nil
}

// readPassword reads a password from stdin (one line) or, on a terminal, with
// echo off.
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin bool) (string, error) {
	if f, ok := stdin.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "New password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func addKeys(ctx context.Context, svc *deploy.Service, text, userName, label string, stdin io.Reader, stdout io.Writer) error {
	if text == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		text = string(b)
	}
	keys, err := deploy.ParseKeys(text)
	if err != nil {
		return err
	}
	added, err := svc.AddKeys(ctx, deploy.Operator, userName, keys, label)
	for _, k := range added {
		fmt.Fprintf(stdout, "added key %d %s for %s\n", k.ID, k.Fingerprint, k.UserName)
	}
	return err
}

func listKeys(ctx context.Context, svc *deploy.Service, stdout io.Writer) error {
	keys, err := svc.Keys(ctx, deploy.Operator)
	if err != nil {
		return err
	}
	return tabular.Print(stdout, keys, "no keys; add one with: minivercel admin key add \"$(cat ~/.ssh/id_ed25519.pub)\"",
		"ID\tUSER\tFINGERPRINT\tNAME\tADDED\tLAST USED", func(k schema.SSHKey) []any {
			return []any{k.ID, k.UserName, k.Fingerprint, k.Name, tabular.When(k.CreatedAt), tabular.TimeOr(k.LastUsedAt, "never")}
		})
}

// rotateKey re-encrypts every variable under a new master key in one
// transaction (see secret.Vars.Rotate).
func rotateKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := subcommand("admin rotate-key", stderr)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{adminUsage}
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	// The keyring itself is needed here: the rotation reports its key ids.
	db, keys, vars, err := c.openVars(ctx, log, true)
	if err != nil {
		return err
	}
	defer db.Close()
	old := keys.Current().ID()
	next, n, err := vars.Rotate(ctx)
	if errors.Is(err, secret.ErrRotationIncomplete) {
		// The values changed: without this key they are lost.
		fmt.Fprintf(stderr, "error: %v\nthe values are now encrypted with this key; save it as the master key (64 hex characters):\n", err)
		fmt.Fprintln(stdout, next.String())
		return err
	}
	if err != nil {
		return fmt.Errorf("rotate key: %w (nothing changed)", err)
	}
	fmt.Fprintf(stdout, "re-encrypted %d values: key %s replaced by %s\n", n, old, next.ID())
	if keys.FromEnv() {
		// The key lives where the operator put it: only they can replace it.
		fmt.Fprintf(stderr, "MINIVERCEL_MASTER_KEY must now be set to the new key, then the server restarted:\n")
		fmt.Fprintln(stdout, next.String())
	}
	return nil
}

// listNodes prints every node that registered on the database with its
// state. Ages are measured by the database's clock, the one the heartbeats
// were written by, never this machine's.
func listNodes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := subcommand("admin nodes", stderr)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{adminUsage}
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := db.store.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	now, err := db.store.Now(ctx)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	return tabular.Print(stdout, list, "no nodes; a node registers when minivercel serve starts",
		"NODE\tROLES\tADDRESS\tVERSION\tSTATE\tLAST SEEN\tSTARTED", func(n schema.Node) []any {
			return []any{n.ID, strings.Join(n.Roles, ","), cmp.Or(n.Address, "-"), cmp.Or(n.Version, "-"),
				nodes.State(n, now), nodes.Ago(n.LastSeen, now), tabular.When(n.StartedAt)}
		})
}
