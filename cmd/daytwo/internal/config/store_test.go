package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreURLAndPassword(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dbpw"), []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(body string) string {
		p := filepath.Join(dir, "daytwo.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	path := write("store: {url: 'postgres://daytwo@db1:5432/daytwo', password_file: dbpw}\n")
	getenv, environ := noEnv()
	cfg, err := Load(Source{File: path, Getenv: getenv, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.URL != "postgres://daytwo@db1:5432/daytwo" || cfg.Secrets.DBPassword != "file-secret" || !strings.HasPrefix(cfg.Secrets.DBPasswordSource, "file ") {
		t.Fatalf("store = %+v, password from %q", cfg.Store, cfg.Secrets.DBPasswordSource)
	}
	// The environment wins over the file: DAYTWO_DB_PASSWORD, then PGPASSWORD.
	getenv, environ = noEnv("PGPASSWORD", "pg-env", "DAYTWO_DB_URL", "postgres://other@db2/daytwo")
	if cfg, err = Load(Source{File: path, Getenv: getenv, Environ: environ}); err != nil || cfg.Secrets.DBPassword != "pg-env" || cfg.Store.URL != "postgres://other@db2/daytwo" {
		t.Fatalf("PGPASSWORD/DAYTWO_DB_URL: %+v, %v", cfg.Store, err)
	}
	getenv, environ = noEnv("PGPASSWORD", "pg-env", "DAYTWO_DB_PASSWORD", "daytwo-env")
	if cfg, err = Load(Source{File: path, Getenv: getenv, Environ: environ}); err != nil || cfg.Secrets.DBPassword != "daytwo-env" {
		t.Fatalf("DAYTWO_DB_PASSWORD: %v", err)
	}
	// A password in the URL is refused, without repeating it.
	for _, body := range []string{
		"store: {url: 'postgres://daytwo:hunter2-secret@db1/daytwo'}\n",
		"store: {url: 'postgres://daytwo@db1/daytwo?password=hunter2-secret'}\n",
	} {
		_, err := Load(Source{File: write(body), Getenv: getenv, Environ: environ})
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "store.url") || strings.Contains(err.Error(), "hunter2-secret") {
			t.Fatalf("%s: %v", body, err)
		}
	}
	if _, err := Load(Source{File: write("store: {url: 'mysql://db1/daytwo'}\n"), Getenv: getenv, Environ: environ}); err == nil || !strings.Contains(err.Error(), "store.url") {
		t.Fatalf("another scheme: %v", err)
	}
}
