package main

import (
	"context"
	"fmt"
	"io"

	"minivercel/deploy"
	"minivercel/internal/tabular"
	"minivercel/schema"
)

const domainUsage = `usage:
  minivercel domain add <project> <domain>      serve the project's production at the domain too
  minivercel domain remove <project> <domain>
  minivercel domain list <project>              domains and their certificate status
Point the domain's DNS (A/AAAA or CNAME) at this server; with --https-addr its
certificate is obtained on the first HTTPS request.`

func domainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	verb, fs, db, svc, err := openVerb(ctx, "domain", args, verbs{"add": {2, 2}, "remove": {2, 2}, "list": {1, 1}}, domainUsage, stderr, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	project := fs.Arg(0)
	switch verb {
	case "add":
		d, created, err := svc.AddDomain(ctx, deploy.Operator, project, fs.Arg(1))
		if err != nil {
			return err
		}
		if !created {
			fmt.Fprintf(stdout, "%s already serves %s\n", d.Name, project)
			return nil
		}
		fmt.Fprintf(stdout, "%s now serves %s\n", d.Name, project)
	case "remove":
		name, err := svc.RemoveDomain(ctx, deploy.Operator, project, fs.Arg(1))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s from %s\n", name, project)
	case "list":
		domains, err := svc.Domains(ctx, project)
		if err != nil {
			return err
		}
		return tabular.Print(stdout, domains,
			fmt.Sprintf("%s has no custom domains; add one with: minivercel domain add %s www.example.com", project, project),
			"DOMAIN\tCERTIFICATE\tDETAIL", func(d schema.Domain) []any { return []any{d.Name, d.CertStatus, d.CertError} })
	}
	return nil
}
