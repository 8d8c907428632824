//go:build unix && !linux && !darwin

package live

// sysWritev writes the buffers one after the other where x/sys offers no writev; it stops
// at the first short write, as writev would.
func sysWritev(fd int, bufs [][]byte) (int, error) {
	total := 0
	for _, b := range bufs {
		n, err := sysWrite(fd, b)
		if n > 0 {
			total += n
		}
		if err != nil {
			if total > 0 && err == errWouldBlock {
				return total, nil
			}
			return total, err
		}
		if n < len(b) {
			break
		}
	}
	return total, nil
}
