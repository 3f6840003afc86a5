package main

import (
	"runtime"
	"runtime/debug"
)

// commit and date are stamped at build time (the Makefile's build target):
// -ldflags "-X main.commit=<sha> -X main.date=<RFC 3339>". Without them
// they come from the Go toolchain's VCS stamp (runtime/debug.ReadBuildInfo).
var (
	commit = ""
	date   = ""
)

type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Schema    int    `json:"schema_version"`
}

func buildInfo() versionInfo {
	v := versionInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(), Schema: schemaVersion()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				if v.Date == "" {
					v.Date = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && commit == "" && v.Commit != "" {
			v.Commit += "-dirty"
		}
		if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	if v.Date == "" {
		v.Date = "unknown"
	}
	return v
}
