// Package secret keeps environment variable values secret: AES-256-GCM
// encryption under a master key (values are bound to their project, name and
// target, so a ciphertext cannot be moved to another variable), the master key
// file and its rotation, and the redaction of values from log streams.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Sentinel errors.
var (
	// ErrDecrypt means a ciphertext does not open under the key and binding
	// it claims: it was altered, moved to another variable, or made with a
	// key this server does not have.
	ErrDecrypt = errors.New("cannot decrypt value")
	// ErrBadKey means a master key is malformed.
	ErrBadKey = errors.New("malformed master key")
)

// KeySize is the master key's size: AES-256.
const KeySize = 32

// idSize is how many bytes of the key's SHA-256 prefix each ciphertext, so a
// value names the key that sealed it and rotation can tell keys apart.
const idSize = 8

// Key is a master key.
type Key struct {
	k  [KeySize]byte
	id [idSize]byte
}

// NewKey returns a fresh random key.
func NewKey() Key {
	var raw [KeySize]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return keyFrom(raw)
}

func keyFrom(raw [KeySize]byte) Key {
	sum := sha256.Sum256(append([]byte("minivercel key id\x00"), raw[:]...))
	k := Key{k: raw}
	copy(k.id[:], sum[:idSize])
	return k
}

// ParseKey reads a key written as 64 hex characters.
func ParseKey(s string) (Key, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != KeySize {
		return Key{}, fmt.Errorf("%w: want %d hex characters", ErrBadKey, 2*KeySize)
	}
	var raw [KeySize]byte
	copy(raw[:], b)
	return keyFrom(raw), nil
}

// String returns the key as hex, the form ParseKey reads. Never log it.
func (k Key) String() string { return hex.EncodeToString(k.k[:]) }

// ID returns the key's public identifier (hex of a hash prefix): safe to show.
func (k Key) ID() string { return hex.EncodeToString(k.id[:]) }

// binding is the additional data a value is sealed with.
func binding(projectID int64, name, target string) []byte {
	return []byte("minivercel env\x00" + strconv.FormatInt(projectID, 10) + "\x00" + name + "\x00" + target)
}

// Seal encrypts value for one variable: key id, random nonce, ciphertext.
func (k Key) Seal(projectID int64, name, target, value string) []byte {
	aead := k.aead()
	out := make([]byte, idSize, idSize+aead.NonceSize()+len(value)+aead.Overhead())
	copy(out, k.id[:])
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, []byte(value), binding(projectID, name, target))
}

func (k Key) aead() cipher.AEAD {
	block, err := aes.NewCipher(k.k[:])
	if err != nil {
		panic(err) // a 32-byte key never fails
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// open decrypts a ciphertext sealed by this key.
func (k Key) open(projectID int64, name, target string, sealed []byte) (string, error) {
	aead := k.aead()
	if len(sealed) < idSize+aead.NonceSize()+aead.Overhead() {
		return "", ErrDecrypt
	}
	nonce := sealed[idSize : idSize+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, sealed[idSize+aead.NonceSize():], binding(projectID, name, target))
	if err != nil {
		return "", ErrDecrypt
	}
	return string(plain), nil
}

// KeyID returns the id of the key that sealed a ciphertext.
func KeyID(sealed []byte) string {
	if len(sealed) < idSize {
		return ""
	}
	return hex.EncodeToString(sealed[:idSize])
}

// Keyring is the master key in use, loaded from the environment or from a key
// file. After a rotation by another process (minivercel admin rotate-key) a
// value sealed by a key it does not know makes it read the key file again, so
// a running server follows a rotation without a restart. Safe for concurrent use.
type Keyring struct {
	file    string // "" when the key came from the environment
	mu      sync.RWMutex
	current Key
	stamp   os.FileInfo // the key file as last read
}

// LoadKeyring returns the keyring: fromEnv (hex) when set, else the key file,
// created with mode 0600 holding a fresh key when missing.
func LoadKeyring(fromEnv, file string) (*Keyring, error) {
	if strings.TrimSpace(fromEnv) != "" {
		k, err := ParseKey(fromEnv)
		if err != nil {
			return nil, fmt.Errorf("MINIVERCEL_MASTER_KEY: %w", err)
		}
		return &Keyring{current: k}, nil
	}
	r := &Keyring{file: file}
	k, err := readKeyFile(file)
	if errors.Is(err, os.ErrNotExist) {
		k = NewKey()
		err = writeKeyFile(file, k, false)
		if errors.Is(err, os.ErrExist) {
			// Another process created it first: use theirs.
			k, err = readKeyFile(file)
		}
	}
	if err != nil {
		return nil, err
	}
	r.current = k
	r.stamp, _ = os.Stat(file)
	return r, nil
}

// FromEnv reports whether the key came from the environment (a rotation then
// cannot update it: the operator must).
func (r *Keyring) FromEnv() bool { return r.file == "" }

// Current returns the key new values are sealed with. With a key file it is
// read again when the file changed (a rotation by another process), so a
// running server never seals with a retired key.
func (r *Keyring) Current() Key {
	if r.file != "" {
		if fi, err := os.Stat(r.file); err == nil {
			r.mu.RLock()
			same := r.stamp != nil && os.SameFile(fi, r.stamp) && fi.ModTime().Equal(r.stamp.ModTime())
			r.mu.RUnlock()
			if !same {
				if k, err := readKeyFile(r.file); err == nil {
					r.mu.Lock()
					r.current, r.stamp = k, fi
					r.mu.Unlock()
				}
			}
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// Seal encrypts a value with the current key.
func (r *Keyring) Seal(projectID int64, name, target, value string) []byte {
	return r.Current().Seal(projectID, name, target, value)
}

// Open decrypts a value.
func (r *Keyring) Open(projectID int64, name, target string, sealed []byte) (string, error) {
	k := r.Current()
	if KeyID(sealed) != k.ID() && r.file != "" {
		// Sealed by a key we do not have: perhaps the file was rotated.
		if fresh, err := readKeyFile(r.file); err == nil && fresh.ID() == KeyID(sealed) {
			r.mu.Lock()
			r.current = fresh
			r.mu.Unlock()
			k = fresh
		}
	}
	if KeyID(sealed) != k.ID() {
		return "", fmt.Errorf("%w: sealed by key %s, this server has key %s", ErrDecrypt, KeyID(sealed), k.ID())
	}
	return k.open(projectID, name, target, sealed)
}

// PrepareRotation writes next beside the key file (<file>.next), before any
// value is re-sealed: if the process dies after the database committed the
// new values, the key that opens them is on disk.
func (r *Keyring) PrepareRotation(next Key) error {
	if r.file == "" {
		return nil
	}
	return writeKeyFile(r.file+".next", next, true)
}

// FinishRotation replaces the key file with the prepared one.
func (r *Keyring) FinishRotation(next Key) error {
	if r.file != "" {
		if err := os.Rename(r.file+".next", r.file); err != nil {
			return fmt.Errorf("install rotated key: %w", err)
		}
		syncDir(filepath.Dir(r.file))
	}
	r.mu.Lock()
	r.current = next
	r.mu.Unlock()
	return nil
}

// Recover finishes a rotation that a crash interrupted: when <file>.next
// exists and a stored value (given by its key id) was sealed with it, it
// becomes the key file.
func (r *Keyring) Recover(storedKeyID string) error {
	if r.file == "" {
		return nil
	}
	next, err := readKeyFile(r.file + ".next")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if storedKeyID == next.ID() {
		return r.FinishRotation(next)
	}
	// The rotation never committed: the prepared key is unused.
	return os.Remove(r.file + ".next")
}

func readKeyFile(file string) (Key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Key{}, err
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", file, err)
	}
	return k, nil
}

// writeKeyFile writes a key with mode 0600 through a temporary file and a
// rename; replace allows overwriting an existing file.
func writeKeyFile(file string, k Key, replace bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".key-*")
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if replace {
		if err := os.Rename(tmp.Name(), file); err != nil {
			return fmt.Errorf("write key file: %w", err)
		}
	} else if err := os.Link(tmp.Name(), file); err != nil {
		// A hard link never replaces: two processes starting together
		// cannot both create a key.
		return fmt.Errorf("create key file: %w", err)
	}
	syncDir(filepath.Dir(file))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
