// Package cliflag parses command lines whose flags may come before, between
// or after the arguments (`logs blog -f`), as the CLI and the commands over
// SSH both take them.
package cliflag

import "flag"

// Parse parses args into fs, flags anywhere; after it fs.Args() holds the
// arguments in order. A "--" ends the flags: what follows is arguments, even
// when it starts with a dash.
func Parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}
