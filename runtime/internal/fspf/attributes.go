package fspf

import (
	"crypto/hmac"
	"errors"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/sys/unix"
)

// Attributes are an entry's owner, group and the extended attributes the image gives it. Labels the host
// assigns (SELinux, AppArmor, Smack, IMA/EVM) and trusted.* are neither sealed nor checked: see
// engine/fspf/attributes.py for why.
type Attributes struct {
	UID, GID int
	Xattrs   map[string][]byte
}

const capability = "security.capability"

var hostAssigned = map[string]bool{
	"security.selinux": true, "security.apparmor": true, "security.SMACK64": true,
	"security.SMACK64EXEC": true, "security.SMACK64MMAP": true, "security.SMACK64TRANSMUTE": true,
	"security.ima": true, "security.evm": true,
}

// HostAssigned is an attribute that is the host's business, not the image's.
func HostAssigned(name string) bool {
	return hostAssigned[name] || strings.HasPrefix(name, "trusted.")
}

func unsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM)
}

// ReadXattrs gives the extended attributes of location itself (a link's own), host labels left out.
func ReadXattrs(location string) (map[string][]byte, error) {
	var names []byte
	for {
		size, err := unix.Llistxattr(location, nil)
		if err != nil {
			if unsupported(err) {
				return nil, nil
			}
			return nil, err
		}
		if size == 0 {
			return nil, nil
		}
		names = make([]byte, size)
		n, err := unix.Llistxattr(location, names)
		if errors.Is(err, unix.ERANGE) {
			continue // grew in between
		}
		if err != nil {
			return nil, err
		}
		names = names[:n]
		break
	}
	values := map[string][]byte{}
	for _, name := range strings.Split(string(names), "\x00") {
		if name == "" || HostAssigned(name) {
			continue
		}
		value, err := lgetxattr(location, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed between the two calls
		}
		if err != nil {
			return nil, err
		}
		values[name] = value
	}
	return values, nil
}

func lgetxattr(location, name string) ([]byte, error) {
	for {
		size, err := unix.Lgetxattr(location, name, nil)
		if err != nil {
			return nil, err
		}
		value := make([]byte, size)
		n, err := unix.Lgetxattr(location, name, value)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return value[:n], nil
	}
}

// CheckAttributes names the first difference between the sealed and found attributes.
func CheckAttributes(path, kind string, sealedUID, sealedGID int, sealed map[string][]byte, found Attributes) error {
	if found.UID != sealedUID || found.GID != sealedGID {
		return integrity("Verification of %s failed: the %s's owner changed (sealed %d:%d, found %d:%d)",
			path, kind, sealedUID, sealedGID, found.UID, found.GID)
	}
	for _, name := range sortedXattrNames(sealed, found.Xattrs) {
		expected, wanted := sealed[name]
		present, there := found.Xattrs[name]
		var change string
		switch {
		case !there:
			change = "removed"
		case !wanted:
			change = "added"
		case !hmac.Equal(expected, present):
			change = "changed"
		default:
			continue
		}
		return integrity("Verification of %s failed: %s %s", path, describeXattr(name), change)
	}
	return nil
}

func describeXattr(name string) string {
	if name == capability {
		return "file capabilities (" + capability + ")"
	}
	// Names come from the disk, which an attacker may have written: one printable line, always.
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return "extended attribute " + strconv.QuoteToASCII(name)
		}
	}
	return "extended attribute " + name
}
