package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// watchFile sends on the returned channel when path is written, replaced or moved into place,
// settled for debounce (editors and config management write a file in several steps). It
// watches the directory, not the file: a replaced file is a new inode. The channel closes when
// ctx ends.
func watchFile(ctx context.Context, path string, debounce time.Duration) (<-chan struct{}, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	dir, name := filepath.Dir(path), filepath.Base(path)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer unix.Close(fd)
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		var due time.Time // when the last change settles; zero: nothing pending
		for ctx.Err() == nil {
			// Poll with a short timeout: the descriptor is non-blocking and ctx must end us.
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, 100); err != nil && err != unix.EINTR {
				return
			}
			if fds[0].Revents&unix.POLLIN != 0 {
				n, err := unix.Read(fd, buf)
				for off := 0; err == nil && off+unix.SizeofInotifyEvent <= n; {
					// struct inotify_event: wd, mask, cookie, len (host order), then the name.
					l := int(binary.NativeEndian.Uint32(buf[off+12:]))
					end := min(off+unix.SizeofInotifyEvent+l, n)
					if cString(buf[off+unix.SizeofInotifyEvent:end]) == name {
						due = time.Now().Add(debounce)
					}
					off = end
				}
			}
			if !due.IsZero() && time.Now().After(due) {
				due = time.Time{}
				select {
				case out <- struct{}{}:
				default: // one pending notice is enough
				}
			}
		}
	}()
	return out, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
