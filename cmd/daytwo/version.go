package main

import (
	"runtime"

	"github.com/daytwo/daytwo/store"
)

type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Schema    int    `json:"schema_version"`
}

func buildInfo() versionInfo {
	return versionInfo{Version: version, GoVersion: runtime.Version(), Schema: store.SchemaVersion()}
}
