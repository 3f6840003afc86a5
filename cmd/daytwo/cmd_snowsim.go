package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/itsm/snowsim"
)

func (a *app) snowsimCommand() *cobra.Command {
	var (
		addr, state, seed, faults, approver string
		lenient, autoStandard, typed        bool
		autoAfter, conflictDelay            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "snowsim",
		Short: "Run the ServiceNow simulator (rehearse a configuration without a real instance)",
		Long: `Serve a faithful ServiceNow simulator: Table, Change Management and Attachment
APIs, Basic and OAuth auth, the change state model and approval engine, and
injectable faults. Point daytwo (or curl, or any ServiceNow client) at it:

  DAYTWO_SN_INSTANCE=http://127.0.0.1:8089 DAYTWO_SN_USER=daytwo DAYTWO_SN_PASSWORD=daytwo daytwo sync --once

--faults takes e.g. "latency=50ms,429=10%,500=5%,503=1/20,html=2%,drop=2%,create-drop=5%"
(see the itsm/snowsim package documentation for the grammar). Admin endpoints
under /__admin/ (loopback only) dump state, show the request log, set faults,
and approve or reject as a named user.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := snowsim.Options{
				StatePath: state, LenientTransitions: lenient, TypedChangeValues: typed, Logger: a.log(),
				AutoApprove:   snowsim.AutoApprove{Standard: autoStandard, NormalAfter: autoAfter, NormalApprover: approver},
				ConflictDelay: conflictDelay,
			}
			if faults != "" {
				f, err := snowsim.ParseFaults(faults)
				if err != nil {
					return usagef("--faults: %v", err)
				}
				opts.Faults = f
			}
			if seed != "" {
				if st, err := os.Stat(seed); err != nil || !st.IsDir() {
					return usagef("--seed %s: not a directory", seed)
				}
				opts.Seed = os.DirFS(seed)
			}
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return usagef("--addr %q: want host:port", addr)
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				fmt.Fprintf(a.stderr, "warning: snowsim on %s is reachable beyond this machine; its seed passwords are public\n", addr)
			}
			srv, err := snowsim.Listen(cmd.Context(), addr, opts)
			if err != nil {
				return fmt.Errorf("snowsim: %w", err)
			}
			defer srv.Close()
			fmt.Fprintln(a.stdout, "seed users (user / password: roles; groups):")
			for _, u := range srv.Sim().SeedUsers() {
				fmt.Fprintf(a.stdout, "  %s / %s: %s; %s\n", u.UserName, u.Password, strings.Join(u.Roles, ", "), orDash(strings.Join(u.Groups, ", ")))
			}
			if faults != "" {
				fmt.Fprintf(a.stdout, "faults: %s\n", faults)
			}
			fmt.Fprintf(a.stdout, "snowsim listening on %s\n", srv.URL())
			<-cmd.Context().Done()
			fmt.Fprintln(a.stdout, "snowsim stopping")
			return srv.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8089", "listen address (loopback by default)")
	f.StringVar(&state, "state", "", "persist state to this file (loaded at start if it exists)")
	f.StringVar(&seed, "seed", "", "seed directory (default: the built-in fixtures/servicenow)")
	f.StringVar(&faults, "faults", "", "fault injection spec, e.g. \"429=10%,500=5%,drop=2%\"")
	f.BoolVar(&lenient, "lenient-transitions", false, "answer illegal state moves with 200 and the state unchanged (some instances do)")
	f.BoolVar(&autoStandard, "auto-approve-standard", false, "schedule new standard changes at once")
	f.DurationVar(&autoAfter, "auto-approve-after", 0, "approve normal/emergency approvals this long after they are requested (0: off)")
	f.StringVar(&approver, "approver", "cab.manager", "who approves automatically")
	f.DurationVar(&conflictDelay, "conflict-delay", 2*time.Second, "how long a conflict check runs in the background (negative: completes at once)")
	f.BoolVar(&typed, "typed-values", false, "Change API returns typed values (true, 3.0) like the documented samples")
	return cmd
}
