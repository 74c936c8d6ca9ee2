package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	gossh "golang.org/x/crypto/ssh"

	"minivercel/schema"
)

// adminUser is the user created on first start from MINIVERCEL_INITIAL_ADMIN_KEYS.
const adminUser = "admin"

func admin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "key" {
		return usageError{"usage: minivercel admin key add|list|remove ..."}
	}
	fs := flag.NewFlagSet("admin key "+args[1], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	userName := fs.String("user", adminUser, "user the key belongs to (created if missing)")
	label := fs.String("name", "", "a label for the key (default: the key's comment)")
	if err := parseFlags(fs, args[2:], os.Getenv); err != nil {
		return err
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	switch args[1] {
	case "add", "list", "remove":
	default:
		return usageError{fmt.Sprintf("unknown key command %q: want add, list or remove", args[1])}
	}
	if args[1] != "list" && fs.NArg() == 0 {
		return usageError{fmt.Sprintf("minivercel admin key %s needs an argument", args[1])}
	}
	db, err := openDatabase(ctx, &c, true, log)
	if err != nil {
		return err
	}
	defer db.Close()
	switch args[1] {
	case "add":
		text := strings.Join(fs.Args(), " ")
		if text == "-" {
			b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
			if err != nil {
				return fmt.Errorf("read key: %w", err)
			}
			text = string(b)
		}
		keys, err := parseAuthorizedKeys(text)
		if err != nil {
			return err
		}
		for _, k := range keys {
			name := *label
			if name == "" {
				name = k.comment
			}
			added, err := addKey(ctx, db.store, *userName, name, k)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "added key %d %s for %s\n", added.ID, added.Fingerprint, added.UserName)
		}
	case "list":
		keys, err := db.store.ListKeys(ctx)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			fmt.Fprintln(stdout, "no keys; add one with: minivercel admin key add \"$(cat ~/.ssh/id_ed25519.pub)\"")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSER\tFINGERPRINT\tNAME\tADDED\tLAST USED")
		for _, k := range keys {
			used := "never"
			if k.LastUsedAt != nil {
				used = k.LastUsedAt.Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.UserName, k.Fingerprint, k.Name, k.CreatedAt.Format("2006-01-02 15:04"), used)
		}
		return tw.Flush()
	case "remove":
		k, err := db.store.RemoveKey(ctx, fs.Arg(0))
		if errors.Is(err, schema.ErrNotFound) {
			return fmt.Errorf("no key with id or fingerprint %q (see: minivercel admin key list)", fs.Arg(0))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed key %d %s of %s\n", k.ID, k.Fingerprint, k.UserName)
	}
	return nil
}

// authorizedKey is one parsed public key line.
type authorizedKey struct {
	fingerprint string
	line        string
	comment     string
}

// parseAuthorizedKeys reads public keys in authorized_keys form, one per line;
// blank lines and # comments are skipped. Any bad line fails the whole input, so
// a typo never half-applies.
func parseAuthorizedKeys(text string) ([]authorizedKey, error) {
	var keys []authorizedKey
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pk, comment, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("line %d is not an SSH public key (want e.g. \"ssh-ed25519 AAAA... you@host\"): %w", n, err)
		}
		keys = append(keys, authorizedKey{
			fingerprint: gossh.FingerprintSHA256(pk),
			line:        strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pk))),
			comment:     comment,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, usageError{"no SSH public key given"}
	}
	return keys, nil
}

func addKey(ctx context.Context, store *schema.Store, userName, label string, k authorizedKey) (schema.SSHKey, error) {
	u, err := store.UserByName(ctx, userName)
	if errors.Is(err, schema.ErrNotFound) {
		u, err = store.CreateUser(ctx, userName, userName == adminUser)
	}
	if err != nil {
		return schema.SSHKey{}, fmt.Errorf("find user %s: %w", userName, err)
	}
	added, err := store.AddKey(ctx, u.ID, label, k.fingerprint, k.line)
	if errors.Is(err, schema.ErrConflict) {
		return schema.SSHKey{}, fmt.Errorf("key %s is already registered", k.fingerprint)
	}
	return added, err
}

// seedAdmin creates the admin user with the keys of MINIVERCEL_INITIAL_ADMIN_KEYS
// when the database has no user yet (the first start).
func seedAdmin(ctx context.Context, store *schema.Store, keysText string) (int, error) {
	if strings.TrimSpace(keysText) == "" {
		return 0, nil
	}
	n, err := store.CountUsers(ctx)
	if err != nil || n > 0 {
		return 0, err
	}
	keys, err := parseAuthorizedKeys(keysText)
	if err != nil {
		return 0, fmt.Errorf("MINIVERCEL_INITIAL_ADMIN_KEYS: %w", err)
	}
	for _, k := range keys {
		if _, err := addKey(ctx, store, adminUser, k.comment, k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
