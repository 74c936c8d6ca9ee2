package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"minivercel/schema"
)

const domainUsage = `usage:
  minivercel domain add <project> <domain>      serve the project's production at the domain too
  minivercel domain remove <project> <domain>
  minivercel domain list <project>              domains and their certificate status
Point the domain's DNS (A/AAAA or CNAME) at this server; with --https-addr its
certificate is obtained on the first HTTPS request.`

func domainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{domainUsage}
	}
	fs, c := subcommand("domain "+args[0], stderr)
	base := fs.String("base-domain", "localhost", "the server's base domain: its hosts cannot be added as custom domains")
	if err := parseFlags(fs, args[1:], os.Getenv); err != nil {
		return err
	}
	want := map[string]int{"add": 2, "remove": 2, "list": 1}
	if n, ok := want[args[0]]; !ok || fs.NArg() != n {
		return usageError{domainUsage}
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := db.project(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	switch args[0] {
	case "add":
		name, err := schema.ValidateDomain(fs.Arg(1), *base, false)
		if err != nil {
			return usageError{err.Error()}
		}
		if _, err := db.store.AddDomain(ctx, p.ID, name); errors.Is(err, schema.ErrConflict) {
			return fmt.Errorf("%s already belongs to another project", name)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s now serves %s\n", name, p.Name)
	case "remove":
		name, err := schema.ValidateDomain(fs.Arg(1), *base, false)
		if err != nil {
			return usageError{err.Error()}
		}
		if err := db.store.RemoveDomain(ctx, p.ID, name); errors.Is(err, schema.ErrNotFound) {
			return fmt.Errorf("%s is not a domain of %s", name, p.Name)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s from %s\n", name, p.Name)
	case "list":
		domains, err := db.store.ListDomains(ctx, p.ID)
		if err != nil {
			return err
		}
		if len(domains) == 0 {
			fmt.Fprintf(stdout, "%s has no custom domains; add one with: minivercel domain add %s www.example.com\n", p.Name, p.Name)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DOMAIN\tCERTIFICATE\tDETAIL")
		for _, d := range domains {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, d.CertStatus, d.CertError)
		}
		return tw.Flush()
	}
	return nil
}
