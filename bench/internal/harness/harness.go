// Package harness starts and watches the processes of a benchmark run: it
// builds the server apps, starts them and client processes as children that
// die with the driver, and reads the servers' /stats.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/livepoll/livepoll/bench/internal/tlscert"
	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/internal/srvstats"
)

const benchModule = "module github.com/livepoll/livepoll/bench"

// BenchDir finds the bench module's directory from the working directory up.
func BenchDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte(benchModule)) {
			return dir, nil
		}
		if sub := filepath.Join(dir, "bench", "go.mod"); fileHasPrefix(sub, benchModule) {
			return filepath.Dir(sub), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: run inside the livepoll repository (bench/go.mod not found)")
		}
		dir = parent
	}
}

func fileHasPrefix(path, prefix string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.HasPrefix(b, []byte(prefix))
}

// Build compiles servers/<impl> of the bench module into outDir.
func Build(ctx context.Context, benchDir, impl, outDir string) (string, error) {
	out := filepath.Join(outDir, "server-"+impl)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./servers/"+impl)
	cmd.Dir = benchDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build servers/%s: %v\n%s", impl, err, b)
	}
	return out, nil
}

// FreePort returns a loopback address with a port that was free a moment ago.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Child is a started child process (internal/proc: it dies with the driver) whose
// stderr goes to a file, LogPath.
type Child struct {
	*proc.Child
	LogPath string
}

// Start starts name with args as a child that is killed when this process
// dies (PDEATHSIG). Stderr goes to logPath; stdout and stdin are left to
// the caller (set them on the Cmd via the setup callback).
func Start(name string, args []string, logPath string, setup func(*exec.Cmd) error) (*Child, error) {
	cmd := exec.Command(name, args...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if setup != nil {
		if err := setup(cmd); err != nil {
			logf.Close()
			return nil, err
		}
	}
	pc, err := proc.Start(cmd)
	if err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		<-pc.Done()
		logf.Close()
	}()
	return &Child{Child: pc, LogPath: logPath}, nil
}

// Piped is a child whose stdin the driver writes and whose stdout it reads.
type Piped struct {
	*Child
	Stdin   io.WriteCloser
	Replies <-chan string // stdout, line by line (Lines); closed at its end
}

// StartPiped is Start with the child's stdin and stdout piped to the driver.
func StartPiped(name string, args []string, logPath string) (*Piped, error) {
	var stdin io.WriteCloser
	var stdout *bufio.Reader
	c, err := Start(name, args, logPath, func(c *exec.Cmd) error {
		var err error
		if stdin, err = c.StdinPipe(); err != nil {
			return err
		}
		out, err := c.StdoutPipe()
		stdout = bufio.NewReader(out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Piped{Child: c, Stdin: stdin, Replies: Lines(stdout)}, nil
}

// LogTail returns the last n lines of the child's stderr.
func (c *Child) LogTail(n int) string {
	b, _ := os.ReadFile(c.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Server is a started server app.
type Server struct {
	*Child
	Addr string // where /ws is: ws://, or wss:// when TLS
	// StatsAddr is where /stats and /debug/pprof/ are, as plain HTTP: Addr, or with TLS
	// the app's -stats-addr.
	StatsAddr string
	TLS       bool
}

// URL is the server's WebSocket URL (ws:// or wss://).
func (s *Server) URL() string {
	if s.TLS {
		return "wss://" + s.Addr + "/ws"
	}
	return "ws://" + s.Addr + "/ws"
}

// StartServer starts a server binary on a free loopback port, with the extra arguments
// (e.g. -compress), and waits until /stats answers. It exits by itself after exitAfter.
func StartServer(bin, logPath string, exitAfter time.Duration, extra ...string) (*Server, error) {
	return start(bin, logPath, exitAfter, nil, extra)
}

// StartApp starts a server app for a measuring program: serving wss:// with cert when it
// is not nil (as StartTLSServer), ws:// otherwise, and with -compress when compress is set.
func StartApp(bin, logPath string, exitAfter time.Duration, cert *tlscert.Files, compress bool) (*Server, error) {
	var extra []string
	if compress {
		extra = append(extra, "-compress")
	}
	return start(bin, logPath, exitAfter, cert, extra)
}

// StartTLSServer is StartServer for wss://: the app gets the certificate's files
// (-cert, -key) and serves wss:// on Addr and /stats as plain HTTP on StatsAddr
// (-stats-addr), another free loopback port.
func StartTLSServer(bin, logPath string, exitAfter time.Duration, cert tlscert.Files, extra ...string) (*Server, error) {
	return start(bin, logPath, exitAfter, &cert, extra)
}

// StartServerApart is StartServer for an app that serves only WebSocket upgrades on its
// address (livepoll's -serve, in extra): /stats is on StatsAddr (-stats-addr), another
// free loopback port.
func StartServerApart(bin, logPath string, exitAfter time.Duration, extra ...string) (*Server, error) {
	return startWith(bin, logPath, exitAfter, nil, true, extra)
}

func start(bin, logPath string, exitAfter time.Duration, cert *tlscert.Files, extra []string) (*Server, error) {
	return startWith(bin, logPath, exitAfter, cert, cert != nil, extra)
}

func startWith(bin, logPath string, exitAfter time.Duration, cert *tlscert.Files, statsApart bool, extra []string) (*Server, error) {
	addr, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: addr, StatsAddr: addr}
	args := []string{"-addr", addr, "-exit-after", exitAfter.String()}
	if statsApart {
		if s.StatsAddr, err = FreePort(); err != nil {
			return nil, err
		}
		args = append(args, "-stats-addr", s.StatsAddr)
	}
	if cert != nil {
		s.TLS = true
		args = append(args, "-cert", cert.Cert, "-key", cert.Key)
	}
	args = append(args, extra...)
	c, err := Start(bin, args, logPath, nil)
	if err != nil {
		return nil, err
	}
	s.Child = c
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := FetchStats(s.StatsAddr, false); err == nil {
			return s, nil
		}
		if c.Exited() || time.Now().After(deadline) {
			s.Stop(time.Second)
			return nil, fmt.Errorf("server %s %s did not come up; stderr:\n%s", bin, strings.Join(args[4:], " "), c.LogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FetchStats reads /stats of the server at addr; gc asks for a GC first.
func FetchStats(addr string, gc bool) (srvstats.Snapshot, error) {
	return srvstats.Fetch(context.Background(), "http://"+addr+"/stats", gc)
}

// WaitSessions polls /stats until it reports want sessions or timeout passes.
func WaitSessions(addr string, want int64, timeout time.Duration) (srvstats.Snapshot, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := FetchStats(addr, false)
		if err == nil && s.Sessions == want {
			return s, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return s, fmt.Errorf("waiting for %d sessions: %w", want, err)
			}
			return s, fmt.Errorf("waiting for %d sessions: server reports %d after %v (auths %d, closes %d)",
				want, s.Sessions, timeout, s.Auths, s.Closes)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Lines reads r line by line into a channel, closed at EOF.
func Lines(r *bufio.Reader) <-chan string {
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		for {
			line, err := r.ReadString('\n')
			if line = strings.TrimSpace(line); line != "" {
				ch <- line
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// Fit returns the least-squares slope and intercept of ys against xs.
func Fit(xs, ys []float64) (slope, intercept float64) {
	n := float64(len(xs))
	if n < 2 {
		return 0, 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, sy / n
	}
	slope = (n*sxy - sx*sy) / den
	return slope, (sy - slope*sx) / n
}
