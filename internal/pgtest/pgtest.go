// Package pgtest starts a real, throwaway PostgreSQL server for tests: in a
// temporary directory, on a free loopback port, as a non-root user (the
// tests run as root; PostgreSQL refuses to), stopped when the test ends.
//
// It needs initdb and pg_ctl (Debian's postgresql package) on PATH or under
// /usr/lib/postgresql/*/bin. Without them a test is skipped with a loud
// message, except under CI=true, where it fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server.
type Server struct {
	// User is the superuser; Password its password (TCP connections need
	// it: scram-sha-256).
	User, Password string
	Port           int
	dir, bin       string
	runAs          []string // command prefix that drops root, or nil
	dbs            atomic.Int64
}

// Bin finds PostgreSQL's server binaries ("" if absent).
func Bin() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

// Start starts a server for t, stopped (and its files removed) when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Bin()
	if bin == "" {
		msg := "PostgreSQL tests NOT RUN: initdb/pg_ctl not found (install Debian's postgresql package)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "!!! "+msg)
		t.Skip(msg)
	}
	s := &Server{User: "daytwo", bin: bin}
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	s.Password = hex.EncodeToString(pw)
	dir, err := os.MkdirTemp("", "daytwo-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := s.dropRoot(); err != nil {
			t.Fatal(err)
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", s.User, "--pwfile", pwfile, "-E", "UTF8", "--locale=C",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)
	var lastErr error
	for range 3 { // the free port may be taken between probe and start
		if s.Port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatal(lastErr)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// dropRoot picks the user the server runs as and hands it the directory.
func (s *Server) dropRoot() error {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Mkdir(s.data(), 0o700); err != nil {
			return err
		}
		if err := os.Mkdir(s.sock(), 0o755); err != nil {
			return err
		}
		for _, p := range []string{s.dir, s.data(), s.sock()} {
			if err := os.Chown(p, uid, gid); err != nil {
				return err
			}
		}
		s.runAs = []string{"setpriv", "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}
		return nil
	}
	return fmt.Errorf("pgtest: running as root and no postgres or nobody user to run PostgreSQL as")
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }
func (s *Server) sock() string { return filepath.Join(s.dir, "sock") }

func (s *Server) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, s.runAs...), filepath.Join(s.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func (s *Server) start() error {
	os.MkdirAll(s.sock(), 0o755)
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -F -c max_connections=200", s.Port, s.sock())
	out, err := s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-o", opts, "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return nil
}

// Stop stops the server at once (immediate shutdown).
func (s *Server) Stop() error {
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err != nil {
		return nil
	}
	out, err := s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Restart starts a stopped server again on the same port.
func (s *Server) Restart() error { return s.start() }

// URL is the connection URL of database db, without the password.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", s.User, s.Port, db)
}

// CreateDB creates a new, empty database and returns its name.
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("d%d_%d", time.Now().UnixNano()%1e9, s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = s.Password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return name
}

// Exec runs SQL on database db (for tests that tamper with rows).
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(s.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = s.Password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", strings.SplitN(sql, "\n", 2)[0], err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
