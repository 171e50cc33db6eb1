package fspf

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// HostPath is where the tree path lives below the host directory root.
func HostPath(root, path string) string {
	if path == "/" {
		return root
	}
	return filepath.Join(root, strings.TrimPrefix(path, "/"))
}

// IsWithin: path is prefix or below it, component-wise.
func IsWithin(path, prefix string) bool {
	return prefix == "/" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

func child(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// CheckTreePath accepts a normalised absolute path inside a tree.
func CheckTreePath(path string) bool {
	if !strings.HasPrefix(path, "/") || strings.Contains(path, "\x00") {
		return false
	}
	if path == "/" {
		return true
	}
	for _, part := range strings.Split(path, "/")[1:] {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// Stat is what a walk records of one entry (its lstat).
type Stat struct {
	Mode uint32 // the full st_mode
	Size int64
	UID  int
	GID  int
}

func (s Stat) isDir() bool  { return s.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s Stat) isLink() bool { return s.Mode&unix.S_IFMT == unix.S_IFLNK }
func (s Stat) isReg() bool  { return s.Mode&unix.S_IFMT == unix.S_IFREG }
func (s Stat) perm() uint32 { return s.Mode & 0o7777 }

func (s Stat) typeName() string {
	switch {
	case s.isDir():
		return "dir"
	case s.isLink():
		return "symlink"
	case s.isReg():
		return "file"
	}
	return "special file"
}

func lstat(location string) (Stat, error) {
	var st unix.Stat_t
	if err := unix.Lstat(location, &st); err != nil {
		return Stat{}, &os.PathError{Op: "lstat", Path: location, Err: err}
	}
	return Stat{Mode: st.Mode, Size: st.Size, UID: int(st.Uid), GID: int(st.Gid)}, nil
}

// WalkEntry is one path found below a walk's start, with its host location and lstat.
type WalkEntry struct {
	Path, Location string
	Stat           Stat
}

// Walk lists every path below start (not start itself), sorted by name at each level, directories
// before their contents; links are reported, never followed.
func Walk(root, start string) ([]WalkEntry, error) {
	var out []WalkEntry
	err := walkInto(HostPath(root, start), start, &out)
	return out, err
}

func walkInto(directory, parent string, out *[]WalkEntry) error {
	names, err := readNames(directory)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, name := range names {
		location := filepath.Join(directory, name)
		info, err := lstat(location)
		if err != nil {
			return err
		}
		path := child(parent, name)
		*out = append(*out, WalkEntry{path, location, info})
		if info.isDir() {
			if err := walkInto(location, path, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func readNames(directory string) ([]string, error) {
	handle, err := os.Open(directory)
	if err != nil {
		return nil, err
	}
	defer handle.Close()
	names, err := handle.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names) // byte order: Python sorts the surrogate-escaped names the same way
	return names, nil
}

// NotRegularFileError: something other than a regular file where one must be.
type NotRegularFileError struct{ Location, Kind string }

func (e *NotRegularFileError) Error() string {
	return e.Location + ": " + e.Kind + ", not a regular file"
}

// OpenRegular opens a regular file for reading without following a link in its last component, and
// without blocking on a FIFO put in its place.
func OpenRegular(location string) (*os.File, error) {
	fd, err := unix.Open(location, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: location, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: location, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		kinds := map[uint32]string{unix.S_IFIFO: "a FIFO", unix.S_IFCHR: "a character device",
			unix.S_IFBLK: "a block device", unix.S_IFSOCK: "a socket", unix.S_IFDIR: "a directory"}
		kind, ok := kinds[st.Mode&unix.S_IFMT]
		if !ok {
			kind = "not a regular file"
		}
		return nil, &NotRegularFileError{location, kind}
	}
	// Back to blocking reads: the flag was only for the open.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), location), nil
}

// FsyncDirectory makes a directory's entries durable.
func FsyncDirectory(directory string) error {
	handle, err := os.Open(directory)
	if err != nil {
		return err
	}
	defer handle.Close()
	return handle.Sync()
}
