// Package proc holds the process plumbing shared by the benchmark programs:
// fd limits, CPU time of other processes, building and starting children.
package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

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
