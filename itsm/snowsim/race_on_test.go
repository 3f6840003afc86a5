//go:build race

package snowsim

const raceEnabled = true
