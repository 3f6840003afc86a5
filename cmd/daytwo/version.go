package main

import "runtime"

type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Schema    int    `json:"schema_version"`
}

func buildInfo() versionInfo {
	return versionInfo{Version: version, GoVersion: runtime.Version(), Schema: schemaVersion()}
}
