package secret

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"minivercel/schema"
)

// Vars is the one way in and out of a project's environment variables: values
// are sealed before they reach the database and opened only to be handed to a
// build or an app, never to a listing.
type Vars struct {
	store *schema.Store
	keys  *Keyring
}

// NewVars returns the variables service.
func NewVars(store *schema.Store, keys *Keyring) *Vars { return &Vars{store: store, keys: keys} }

// Var is a variable as listed: its value masked.
type Var struct {
	Name      string `json:"key"`
	Target    string `json:"target"`
	Masked    string `json:"value"`
	UpdatedAt string `json:"updated_at"`
}

// Set validates and stores a variable; created reports a new one.
func (v *Vars) Set(ctx context.Context, projectID int64, name, target, value string) (created bool, err error) {
	c, err := v.SetMany(ctx, projectID, target, []NameValue{{name, value}})
	if err != nil {
		return false, err
	}
	return c[0], nil
}

// NameValue is one variable to set.
type NameValue struct{ Name, Value string }

// SetMany validates and stores variables of one target in one transaction:
// all of them or none. created[i] reports whether vars[i] was new.
func (v *Vars) SetMany(ctx context.Context, projectID int64, target string, vars []NameValue) (created []bool, err error) {
	if target == "" {
		target = schema.TargetAll
	}
	for _, nv := range vars {
		if err := schema.ValidateEnvVar(nv.Name, target, nv.Value); err != nil {
			return nil, err
		}
	}
	// Sealed and stored under the shared key lock: never between a
	// rotation's re-encryption and its installing the new key.
	err = v.store.WithKeyLock(ctx, false, func() error {
		return v.store.InTx(ctx, func(tx pgx.Tx) error {
			st := v.store.WithTx(tx)
			created = created[:0]
			for _, nv := range vars {
				_, c, err := st.SetEnvVar(ctx, projectID, nv.Name, target, v.keys.Seal(projectID, nv.Name, target, nv.Value))
				if err != nil {
					return err
				}
				created = append(created, c)
			}
			return nil
		})
	})
	return created, err
}

// Unset removes a variable (every target when target is "").
func (v *Vars) Unset(ctx context.Context, projectID int64, name, target string) error {
	return v.store.DeleteEnvVar(ctx, projectID, name, target)
}

// List returns a project's variables with masked values.
func (v *Vars) List(ctx context.Context, projectID int64) ([]Var, error) {
	vars, err := v.store.ListEnvVars(ctx, projectID)
	if err != nil {
		return nil, err
	}
	out := make([]Var, 0, len(vars))
	for _, e := range vars {
		value, err := v.keys.Open(e.ProjectID, e.Name, e.Target, e.ValueCiphertext)
		masked := MaskValue(value)
		if err != nil {
			masked = "(cannot decrypt: wrong master key?)"
		}
		out = append(out, Var{Name: e.Name, Target: e.Target, Masked: masked, UpdatedAt: e.UpdatedAt.UTC().Format("2006-01-02T15:04:05Z")})
	}
	return out, nil
}

// Reveal returns one variable's value, for an administrator who asked for it.
func (v *Vars) Reveal(ctx context.Context, projectID int64, name, target string) (string, error) {
	vars, err := v.store.ListEnvVars(ctx, projectID)
	if err != nil {
		return "", err
	}
	for _, e := range vars {
		if e.Name == name && e.Target == target {
			return v.keys.Open(e.ProjectID, e.Name, e.Target, e.ValueCiphertext)
		}
	}
	return "", fmt.Errorf("variable %s (%s): %w", name, target, schema.ErrNotFound)
}

// Resolve returns the environment of a deployment target ("production" or
// "preview") as sorted KEY=VALUE pairs: variables of that target win over
// those for all targets.
func (v *Vars) Resolve(ctx context.Context, projectID int64, target string) ([]string, error) {
	vars, err := v.store.ListEnvVars(ctx, projectID)
	if err != nil {
		return nil, err
	}
	values := map[string]string{}
	specific := map[string]bool{}
	for _, e := range vars {
		if e.Target != schema.TargetAll && e.Target != target {
			continue
		}
		if specific[e.Name] && e.Target == schema.TargetAll {
			continue
		}
		value, err := v.keys.Open(e.ProjectID, e.Name, e.Target, e.ValueCiphertext)
		if err != nil {
			return nil, fmt.Errorf("open variable %s: %w", e.Name, err)
		}
		values[e.Name] = value
		specific[e.Name] = e.Target != schema.TargetAll
	}
	env := make([]string, 0, len(values))
	for k, val := range values {
		env = append(env, k+"="+val)
	}
	sort.Strings(env)
	return env, nil
}

// Values returns the values of every variable of a project, for redaction.
func (v *Vars) Values(ctx context.Context, projectID int64) ([]string, error) {
	vars, err := v.store.ListEnvVars(ctx, projectID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range vars {
		if value, err := v.keys.Open(e.ProjectID, e.Name, e.Target, e.ValueCiphertext); err == nil {
			out = append(out, value)
		}
	}
	return out, nil
}

// ErrRotationIncomplete means the values were re-encrypted under the new key
// but the key could not be installed: the caller must show the new key.
var ErrRotationIncomplete = errors.New("values re-encrypted, but the new key was not installed")

// Rotate re-seals every value of every project under a new key in one
// transaction, holding the key lock so no value is written meanwhile. The new
// key is written next to the key file before the transaction and installed
// after it commits; a crash in between is repaired by RecoverRotation at the
// next start. With a key from the environment the new key is returned for the
// operator to install; so it is when installing fails (ErrRotationIncomplete).
func (v *Vars) Rotate(ctx context.Context) (next Key, n int, err error) {
	err = v.store.WithKeyLock(ctx, true, func() error {
		next = NewKey()
		if err := v.keys.PrepareRotation(next); err != nil {
			return err
		}
		var err error
		n, err = v.store.ResealAll(ctx, func(e schema.EnvVar) ([]byte, error) {
			value, err := v.keys.Open(e.ProjectID, e.Name, e.Target, e.ValueCiphertext)
			if err != nil {
				return nil, err
			}
			return next.Seal(e.ProjectID, e.Name, e.Target, value), nil
		})
		if err != nil {
			_ = v.keys.Recover("") // drop the prepared key: nothing uses it
			return err
		}
		if err := v.keys.FinishRotation(next); err != nil {
			return fmt.Errorf("%w: %v", ErrRotationIncomplete, err)
		}
		return nil
	})
	return next, n, err
}

// RecoverRotation finishes a rotation a crash interrupted (see Keyring.Recover),
// under the key lock so it never races a rotation in progress.
func (v *Vars) RecoverRotation(ctx context.Context) error {
	return v.store.WithKeyLock(ctx, true, func() error {
		c, err := v.store.AnyEnvCiphertext(ctx)
		if err != nil {
			return err
		}
		return v.keys.Recover(KeyID(c))
	})
}

// MaskValue shows the first characters of a long value and hides the rest:
// enough to recognise which key it is, never enough to use it.
func MaskValue(value string) string {
	const bullets = "••••••••"
	r := []rune(value)
	if len(r) < 12 {
		return bullets
	}
	return string(r[:4]) + bullets
}
