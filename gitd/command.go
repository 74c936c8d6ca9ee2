package gitd

import (
	"fmt"
	"strings"

	"minivercel/schema"
)

// service is a git service this server runs.
type service string

const (
	receivePack service = "receive-pack"
	uploadPack  service = "upload-pack"
)

// parseCommand turns the SSH exec request of a git client into a service
// and a project name. git sends "git-receive-pack '/name.git'" (or the
// "git receive-pack" spelling, or an unquoted path from some clients).
//
// Security: the path is never handed to a shell or to the file system as
// given. After stripping the quotes, one leading '/' and an optional ".git",
// what remains must pass schema.ValidateProjectName, whose alphabet has no
// '/', '.', '~' or quote; so "../x", "'/../../tmp/evil.git'" and "~root/x"
// are refused here, unlike parsers that clean the path and keep going.
func parseCommand(raw string) (service, string, error) {
	var svc service
	var rest string
	for _, s := range []service{receivePack, uploadPack} {
		for _, prefix := range []string{"git-" + string(s) + " ", "git " + string(s) + " "} {
			if r, ok := strings.CutPrefix(raw, prefix); ok {
				svc, rest = s, r
			}
		}
	}
	if svc == "" {
		if raw == "" {
			return "", "", fmt.Errorf("%w: this server only speaks git; there is no shell here", errNotGit)
		}
		return "", "", fmt.Errorf("%w: this server only runs git-receive-pack and git-upload-pack", errNotGit)
	}
	path := rest
	if len(path) >= 2 && path[0] == '\'' && path[len(path)-1] == '\'' {
		path = path[1 : len(path)-1]
	}
	path = strings.TrimPrefix(path, "/")
	name := strings.TrimSuffix(path, ".git")
	if err := schema.ValidateProjectName(name); err != nil {
		return "", "", err
	}
	return svc, name, nil
}
