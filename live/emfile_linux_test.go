package live

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const emfileChildEnv = "LIVEPOLL_EMFILE_CHILD"

type emfileReport struct {
	AcceptErrors uint64
	Sessions     int
	CPU          time.Duration // user+system time of the child so far
}

// TestServeSurvivesRunningOutOfDescriptors drives a Serve past its process's descriptor
// limit: the child (this test binary, re-run) lowers its soft RLIMIT_NOFILE to 40 and
// serves; the parent opens 50 connections. The child must stay up, count the failed
// accepts, not spin while starved, and accept the waiting connections once others close.
func TestServeSurvivesRunningOutOfDescriptors(t *testing.T) {
	if os.Getenv(emfileChildEnv) == "1" {
		emfileChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeSurvivesRunningOutOfDescriptors$", "-test.v=false")
	cmd.Env = append(os.Environ(), emfileChildEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("child: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("child did not exit")
		}
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	addr := strings.TrimPrefix(recv(t, lines, "child's address"), "addr ")
	report := func() emfileReport {
		fmt.Fprintln(stdin, "report")
		var r emfileReport
		if err := json.Unmarshal([]byte(recv(t, lines, "child's report")), &r); err != nil {
			t.Fatalf("report: %v", err)
		}
		return r
	}

	const n = 50
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second) // the kernel's backlog takes them
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write(upgradeRequest("GET", "ws://"+addr+"/", nil))
	}
	// Wait for the child to run out: accepts failing and the session count settled.
	var before emfileReport
	deadline := time.Now().Add(20 * time.Second)
	for settled := 0; settled < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("child never ran out of descriptors: %+v", before)
		}
		time.Sleep(200 * time.Millisecond)
		r := report()
		if r.AcceptErrors > 0 && r.Sessions > 0 && r.Sessions == before.Sessions {
			settled++
		} else {
			settled = 0
		}
		before = r
	}
	// The child's 101s are in the sockets by now; the rest get nothing while it starves.
	upgraded := func(c net.Conn, wait time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		return err == nil && resp.StatusCode == http.StatusSwitchingProtocols
	}
	var waiting []net.Conn
	ok := 0
	for _, c := range conns {
		if upgraded(c, 100*time.Millisecond) {
			ok++
		} else {
			waiting = append(waiting, c)
		}
	}
	if ok != before.Sessions || len(waiting) == 0 {
		t.Fatalf("%d upgraded (child reports %d sessions), %d waiting: want the limit reached", ok, before.Sessions, len(waiting))
	}
	before = report()
	time.Sleep(2 * time.Second)
	after := report()
	t.Logf("starved: %d sessions, %d waiting; %d failed accepts; child CPU %v over 2 s", after.Sessions, len(waiting), after.AcceptErrors, after.CPU-before.CPU)
	if after.AcceptErrors == 0 {
		t.Fatal("no failed accept counted")
	}
	if cpu := after.CPU - before.CPU; cpu > 300*time.Millisecond {
		t.Fatalf("child used %v of CPU in 2 s while out of descriptors: it spins", cpu)
	}
	// Free descriptors: the waiting connections get their upgrade.
	for _, c := range conns[:len(waiting)+5] {
		if !contains(waiting, c) {
			c.Close()
		}
	}
	freed := 0
	for _, c := range conns {
		if !contains(waiting, c) {
			freed++
		}
	}
	late := 0
	for _, c := range waiting {
		if upgraded(c, 5*time.Second) {
			late++
		}
	}
	if late == 0 {
		t.Fatalf("none of %d waiting connections was upgraded after descriptors were freed", len(waiting))
	}
	t.Logf("after freeing descriptors: %d of %d waiting connections upgraded", late, len(waiting))
}

func contains(list []net.Conn, c net.Conn) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

func emfileChild() {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = 40
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	srv := New(Options{})
	go srv.Serve(ln)
	fmt.Println("addr", ln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		st := srv.Stats()
		b, _ := json.Marshal(emfileReport{AcceptErrors: st.AcceptErrors, Sessions: st.Sessions, CPU: cpu})
		fmt.Println(string(b))
	}
	srv.Close()
	os.Exit(0)
}
