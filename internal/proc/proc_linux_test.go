package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestReadings(t *testing.T) {
	soft, hard, err := NOFILE()
	if err != nil || soft == 0 || hard < soft {
		t.Errorf("NOFILE %d %d %v", soft, hard, err)
	}
	if raised, err := RaiseNOFILE(); err != nil || raised != hard {
		t.Errorf("RaiseNOFILE %d %v, want the hard limit %d", raised, err, hard)
	}
	if n, err := NrOpen(); err != nil || n < hard {
		t.Errorf("NrOpen %d %v", n, err)
	}
	if lo, hi, err := PortRange(); err != nil || lo <= 0 || hi < lo {
		t.Errorf("PortRange %d %d %v", lo, hi, err)
	}
	self, err := RSS(0)
	if err != nil || self < 1<<20 {
		t.Errorf("RSS(0) %d %v", self, err)
	}
	if byPID, err := RSS(os.Getpid()); err != nil || byPID < self/2 || byPID > self*2 {
		t.Errorf("RSS(pid) %d %v, RSS(0) %d", byPID, err, self)
	}
	if pss, err := PSS(0); err != nil || pss == 0 || pss > self*2 {
		t.Errorf("PSS(0) %d %v (RSS %d)", pss, err, self)
	}
	if cpu, err := CPU(os.Getpid()); err != nil || cpu < 0 {
		t.Errorf("CPU %d %v", cpu, err)
	}
	if m, err := ReadMachine(); err != nil || m.Busy <= 0 || m.Softirq < 0 || m.Softirq > m.Busy {
		t.Errorf("ReadMachine %+v %v", m, err)
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Error("RSS of a process that does not exist: no error")
	}
}

func TestChild(t *testing.T) {
	c, err := Start(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Exited() {
		t.Fatal("exited at once")
	}
	start := time.Now()
	c.Stop(5 * time.Second)
	if !c.Exited() || time.Since(start) > 4*time.Second {
		t.Errorf("Stop: exited %v after %v", c.Exited(), time.Since(start))
	}
	if c.Err() == nil {
		t.Error("a child ended by SIGTERM reports no error")
	}

	c, err = Start(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(50 * time.Millisecond); err == nil {
		t.Error("Wait past its timeout: no error")
	}
	<-c.Done()

	c, err = Start(exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(10 * time.Second); err != nil {
		t.Errorf("true: %v", err)
	}
}
