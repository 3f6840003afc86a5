//go:build !race

package snowsim

const raceEnabled = false
