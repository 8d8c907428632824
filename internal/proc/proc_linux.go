package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// NOFILE returns the soft and hard RLIMIT_NOFILE of this process. Go programs raise the
// soft limit to the hard one when they start (since Go 1.19), so the two are usually equal.
func NOFILE() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	return rl.Cur, rl.Max, nil
}

// NrOpen returns /proc/sys/fs/nr_open, the largest value RLIMIT_NOFILE may be raised to.
func NrOpen() (uint64, error) {
	return readUint("/proc/sys/fs/nr_open")
}

// PortRange returns net.ipv4.ip_local_port_range, the ephemeral ports a client socket
// draws from.
func PortRange() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, errors.New("proc: malformed ip_local_port_range")
	}
	if lo, err = strconv.Atoi(f[0]); err == nil {
		hi, err = strconv.Atoi(f[1])
	}
	return lo, hi, err
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// RSS returns VmRSS of process pid (0: this process) in bytes.
func RSS(pid int) (uint64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("proc: no VmRSS in %s", path)
}

// PSS returns the proportional set size of process pid (0: this process) in bytes: its
// resident pages, each shared page divided by the number of processes sharing it, so
// that the PSS of several processes running one binary adds up to what they use
// together (/proc/<pid>/smaps_rollup).
func PSS(pid int) (uint64, error) {
	path := "/proc/self/smaps_rollup"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/smaps_rollup", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("proc: no Pss in %s", path)
}

// RaiseNOFILE raises the soft RLIMIT_NOFILE to the hard limit and returns it.
func RaiseNOFILE() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}

// clockTicks is USER_HZ, which is 100 on every Linux the benchmarks run on.
const clockTicks = 100

// CPU returns utime+stime of process pid in nanoseconds, read from
// /proc/<pid>/stat (resolution 1/USER_HZ = 10 ms).
func CPU(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc: bad cpu fields in /proc/%d/stat", pid)
	}
	return (ut + st) * (1e9 / clockTicks), nil
}

// Machine is a reading of the CPU counters of the whole machine, in
// nanoseconds since boot.
type Machine struct {
	// Busy is the time all CPUs spent outside idle, iowait and steal.
	Busy int64
	// Softirq is the part of Busy spent in interrupts and softirqs. The
	// loopback receive path runs there, usually on the sender's CPU, but is
	// charged to no process.
	Softirq int64
}

// ReadMachine reads /proc/stat.
func ReadMachine() (Machine, error) {
	var m Machine
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return m, errors.New("proc: malformed /proc/stat")
	}
	var v [8]int64 // cpu user nice system idle iowait irq softirq
	for i := 1; i < 8; i++ {
		if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return m, err
		}
	}
	const tick = 1e9 / clockTicks
	m.Busy = (v[1] + v[2] + v[3] + v[6] + v[7]) * tick
	m.Softirq = (v[6] + v[7]) * tick
	return m, nil
}
