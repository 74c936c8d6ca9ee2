// Package sshcmd is the command set users run over the SSH connection they
// push with, as Dokku's is: `ssh git@host logs blog -f`, `ssh git@host env
// set blog KEY=VALUE`. gitd hands it every session whose command is not git
// (gitd.CommandRunner); it splits the command line itself (Split: plain
// words and quotes, never a shell), acts as the user of the key, and does
// everything through deploy.Service, so a refusal reads the same here as in
// the API, the panel and the CLI. Listings and logs are read from the store,
// as the panel reads them.
//
// Output is for people (aligned tables) unless --json is given, when it is
// the API's JSON: the same field names. The exit status is 0 when the
// command did what it was asked, 1 when it failed or the service refused
// (the refusal on stderr, prefixed "error: "), and 2 when the command line
// itself is malformed: an unknown command, a missing argument, a bad flag,
// a build id that is not a number. A value the service finds invalid (a
// bad variable name, a bad domain) is a refusal, exit 1, as the API answers
// it with 400 rather than failing to parse the request.
package sshcmd
