// Package policy evaluates daytwo's CEL policies: rules over the update,
// the environment, its change and the time, that block or warn before a
// change is raised, at the gate, and continuously against live state.
package policy

import (
	"fmt"

	"cel.dev/cel-go/cel"
)

// Variables that every policy expression may use.
const (
	VarUpdate = "update"
	VarEnv    = "env"
	VarChange = "change"
	VarNow    = "now"
)

// NewEnv returns the CEL environment policies compile in.
func NewEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(VarUpdate, cel.DynType),
		cel.Variable(VarEnv, cel.DynType),
		cel.Variable(VarChange, cel.DynType),
		cel.Variable(VarNow, cel.TimestampType),
	)
}

// Compile checks that expr is a valid policy expression: it parses, its
// variables exist, and it yields a bool (or a dynamic value that may).
func Compile(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("invalid CEL: %w", iss.Err())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("invalid CEL: expression yields %s, want bool", t)
	}
	prg, err := env.Program(ast)
	if err != nil {
		return nil, fmt.Errorf("invalid CEL: %w", err)
	}
	return prg, nil
}
