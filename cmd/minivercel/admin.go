package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"minivercel/panel"
	"minivercel/schema"
	"minivercel/secret"
)

// adminUser is the user created on first start from MINIVERCEL_INITIAL_ADMIN_KEYS.
const adminUser = "admin"

const adminUsage = `usage:
  minivercel admin key add [--user NAME] [--name LABEL] KEY|-
  minivercel admin key list
  minivercel admin key remove ID|FINGERPRINT
  minivercel admin user set-password NAME [--password-stdin]
  minivercel admin token create [--user NAME] [--name LABEL]
  minivercel admin token list
  minivercel admin token revoke ID
  minivercel admin rotate-key`

func admin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) >= 1 && args[0] == "rotate-key" {
		return rotateKey(ctx, args[1:], stdout, stderr)
	}
	if len(args) < 2 {
		return usageError{adminUsage}
	}
	cmd := args[0] + " " + args[1]
	fs, c := subcommand("admin "+cmd, stderr)
	userName := fs.String("user", adminUser, "user the key or token belongs to")
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
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	switch cmd {
	case "key add":
		return addKeys(ctx, db.store, strings.Join(fs.Args(), " "), *userName, *label, stdin, stdout)
	case "key list":
		return listKeys(ctx, db.store, stdout)
	case "key remove":
		k, err := db.store.RemoveKey(ctx, fs.Arg(0))
		if errors.Is(err, schema.ErrNotFound) {
			return fmt.Errorf("no key with id or fingerprint %q (see: minivercel admin key list)", fs.Arg(0))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed key %d %s of %s\n", k.ID, k.Fingerprint, k.UserName)
	case "user set-password":
		hash, err := panel.HashPassword(password)
		if err != nil {
			return usageError{err.Error()}
		}
		u, err := findOrCreateUser(ctx, db.store, fs.Arg(0))
		if err != nil {
			return err
		}
		if err := db.store.SetPasswordHash(ctx, u.ID, hash); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password set for %s\n", u.Name)
	case "token create":
		u, err := db.store.UserByName(ctx, *userName)
		if errors.Is(err, schema.ErrNotFound) {
			return fmt.Errorf("no user named %q", *userName)
		}
		if err != nil {
			return err
		}
		token, hash := panel.NewToken()
		t, err := db.store.CreateToken(ctx, u.ID, *label, hash)
		if err != nil {
			return err
		}
		// The token goes alone to stdout so scripts can capture it; it is not
		// stored and cannot be shown again.
		fmt.Fprintf(stderr, "created token %d for %s; it is shown once:\n", t.ID, u.Name)
		fmt.Fprintln(stdout, token)
	case "token list":
		tokens, err := db.store.ListTokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSER\tNAME\tCREATED\tLAST USED\tREVOKED")
		for _, t := range tokens {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.UserName, t.Name, t.CreatedAt.Format("2006-01-02 15:04"),
				timeOr(t.LastUsedAt, "never"), timeOr(t.RevokedAt, "-"))
		}
		return tw.Flush()
	case "token revoke":
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil {
			return usageError{fmt.Sprintf("token id %q is not a number", fs.Arg(0))}
		}
		if err := db.store.RevokeToken(ctx, id); errors.Is(err, schema.ErrNotFound) {
			return fmt.Errorf("no live token %d (see: minivercel admin token list)", id)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked token %d\n", id)
	}
	return nil
}

func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.Format("2006-01-02 15:04")
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

func addKeys(ctx context.Context, store *schema.Store, text, userName, label string, stdin io.Reader, stdout io.Writer) error {
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
		name := label
		if name == "" {
			name = k.comment
		}
		added, err := addKey(ctx, store, userName, name, k)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added key %d %s for %s\n", added.ID, added.Fingerprint, added.UserName)
	}
	return nil
}

func listKeys(ctx context.Context, store *schema.Store, stdout io.Writer) error {
	keys, err := store.ListKeys(ctx)
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
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.UserName, k.Fingerprint, k.Name,
			k.CreatedAt.Format("2006-01-02 15:04"), timeOr(k.LastUsedAt, "never"))
	}
	return tw.Flush()
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

// findOrCreateUser returns the named user, creating it when missing (the admin
// user is an administrator).
func findOrCreateUser(ctx context.Context, store *schema.Store, name string) (schema.User, error) {
	u, err := store.UserByName(ctx, name)
	if errors.Is(err, schema.ErrNotFound) {
		u, err = store.CreateUser(ctx, name, name == adminUser)
	}
	if err != nil {
		return schema.User{}, fmt.Errorf("find user %s: %w", name, err)
	}
	return u, nil
}

func addKey(ctx context.Context, store *schema.Store, userName, label string, k authorizedKey) (schema.SSHKey, error) {
	u, err := findOrCreateUser(ctx, store, userName)
	if err != nil {
		return schema.SSHKey{}, err
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
	// The keyring itself is needed here: the rotation reports its key ids.
	keys, err := openKeyring(c)
	if err != nil {
		return err
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	vars := secret.NewVars(db.store, keys)
	if err := vars.RecoverRotation(ctx); err != nil {
		return err
	}
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
