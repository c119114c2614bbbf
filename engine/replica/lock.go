package replica

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// LockFile is the file of a data folder whose advisory lock (flock) says
// that a process uses the folder. The kernel releases the lock when the
// process dies, so a killed replica leaves no stale claim behind.
const LockFile = "LOCK"

// ErrInUse is the sentinel of InUseError: another process holds the data
// folder's lock.
var ErrInUse = errors.New("data folder in use")

// InUseError names the process that holds a data folder.
type InUseError struct {
	Dir string
	PID int    // 0 when the holder had not yet written it
	By  string // what the holder is, e.g. "gavel serve"
}

func (e *InUseError) Error() string {
	by := e.By
	if by == "" {
		by = "gavel process"
	}
	if e.PID > 0 {
		return fmt.Sprintf("%s is in use by another %s (pid %d)", e.Dir, by, e.PID)
	}
	return fmt.Sprintf("%s is in use by another %s", e.Dir, by)
}

// Is makes errors.Is(err, ErrInUse) hold.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// DirLock is a held data-folder lock.
type DirLock struct {
	f    *os.File
	once sync.Once
}

// LockDir takes DIR/LOCK exclusively without waiting and records the pid
// and by in it. With create the folder is made first; without, a missing
// folder is an error. A held lock is an *InUseError.
func LockDir(dir, by string, create bool) (*DirLock, error) {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			inUse := &InUseError{Dir: dir}
			b := make([]byte, 256)
			n, _ := f.ReadAt(b, 0)
			pid, holder, _ := strings.Cut(strings.TrimSpace(string(b[:n])), " ")
			inUse.PID, _ = strconv.Atoi(pid)
			inUse.By = holder
			return nil, inUse
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	// Only the holder writes, so a reader sees a whole record or none.
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+" "+by+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return &DirLock{f: f}, nil
}

// Release gives the lock up; later calls do nothing.
func (l *DirLock) Release() {
	if l == nil {
		return
	}
	l.once.Do(func() { l.f.Close() })
}

// CheckListen fails at once, naming addr, when addr cannot be listened on
// (a busy port), so that a replica refuses to start before it writes
// anything. A port of 0 is always free.
func CheckListen(what, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener %s: %w", what, addr, err)
	}
	return ln.Close()
}
