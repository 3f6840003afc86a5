package config

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// executors checks an environment's deploy section: exactly one executor
// (command, ansible or ssh) and the shape of each.
func (v *validator) executors(key string, e ops.Environment) {
	d := e.Deploy
	k := key + ".deploy"
	kinds := 0
	if len(d.Command) > 0 {
		kinds++
	}
	if d.Ansible != nil {
		kinds++
	}
	if d.SSH != nil {
		kinds++
	}
	switch {
	case kinds == 0:
		v.add(k+".command", "must name the program to run (argv list, no shell), or configure deploy.ansible or deploy.ssh")
		return
	case kinds > 1:
		v.add(k, "set exactly one of command, ansible or ssh")
		return
	}
	if len(d.Rollback) > 0 && len(d.Command) == 0 {
		v.add(k+".rollback", "is the command executor's rollback argv; use deploy.ansible.rollback_playbook or deploy.ssh.rollback")
	}
	if a := d.Ansible; a != nil {
		ak := k + ".ansible"
		if a.Playbook == "" {
			v.add(ak+".playbook", "must name the playbook a deploy runs")
		}
		if a.Inventory == "" {
			v.add(ak+".inventory", "must name the inventory file or directory (its hosts are the targets' names)")
		}
		if a.Forks < 0 {
			v.add(ak+".forks", "cannot be negative")
		}
		if a.Timeout < 0 {
			v.add(ak+".timeout", "cannot be negative")
		}
		for _, name := range slices.Sorted(maps.Keys(a.ExtraVars)) {
			vk := ak + ".extra_vars." + name
			switch {
			case !ansibleVarRE.MatchString(name):
				v.add(vk, "%q is not an Ansible variable name (letters, digits and _, not starting with a digit)", name)
			case strings.HasPrefix(name, "daytwo_"):
				v.add(vk, "the daytwo_ prefix is reserved for the variables daytwo sets")
			}
			v.tmpl(vk, a.ExtraVars[name])
			if strings.Contains(a.ExtraVars[name], ".Target") {
				v.add(vk, "extra vars are the same for every host of a batch, so .Target is not available; per-host values belong in the inventory")
			}
		}
	}
	if ss := d.SSH; ss != nil {
		sk := k + ".ssh"
		if len(ss.Command) == 0 {
			v.add(sk+".command", "must name the program to run on the target (argv list; each argument is quoted for the remote shell)")
		}
		if ss.Port < 0 || ss.Port > 65535 {
			v.add(sk+".port", "%d is not a port (1..65535, or 0 for ssh's default)", ss.Port)
		}
		v.tmpl(sk+".host", ss.Host)
		for j, a := range ss.Command {
			v.tmpl(fmt.Sprintf("%s.command[%d]", sk, j), a)
		}
		for j, a := range ss.Rollback {
			v.tmpl(fmt.Sprintf("%s.rollback[%d]", sk, j), a)
		}
		for name := range d.Env {
			if !ansibleVarRE.MatchString(name) {
				v.add(k+".env."+name, "cannot be set on the remote side of ssh: use letters, digits and _")
			}
		}
	}
}

var ansibleVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckExecutors looks at what the executors need outside the file, for
// `daytwo config check`: the playbooks and the inventory exist, and, when
// Ansible is installed, parse and list every target as a host; the SSH key
// file is readable by daytwo and by no one else, and known_hosts exists.
// It runs ansible-inventory and ansible-playbook --syntax-check, so it is
// not part of every load.
func CheckExecutors(ctx context.Context, c *Config) []Problem {
	v := &validator{}
	for i, e := range c.Environments {
		key := fmt.Sprintf("environments[%d].deploy", i)
		if a := e.Deploy.Ansible; a != nil {
			v.ansibleFiles(ctx, key+".ansible", e, a)
		}
		if ss := e.Deploy.SSH; ss != nil {
			v.sshFiles(key+".ssh", ss)
		}
		for j, h := range e.Health {
			if h.Ansible != nil {
				v.ansibleFiles(ctx, fmt.Sprintf("environments[%d].health[%d].ansible", i, j), e, h.Ansible)
			}
		}
	}
	return v.probs
}

func (v *validator) ansibleFiles(ctx context.Context, key string, e ops.Environment, a *ops.AnsibleSpec) {
	ok := true
	for _, f := range [][2]string{{"playbook", a.Playbook}, {"inventory", a.Inventory}, {"rollback_playbook", a.RollbackPlaybook}} {
		if f[1] == "" {
			continue
		}
		if _, err := os.Stat(f[1]); err != nil {
			v.add(key+"."+f[0], "%v", err)
			ok = false
		}
	}
	if !ok {
		return
	}
	inv, err := exec.LookPath("ansible-inventory")
	if err != nil {
		return // nothing more can be checked here; the runner's host needs Ansible
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, inv, "-i", a.Inventory, "--list")
	cmd.Env = append(os.Environ(), "ANSIBLE_INVENTORY_UNPARSED_FAILED=true", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=true", "ANSIBLE_NOCOLOR=1")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		v.add(key+".inventory", "ansible-inventory cannot parse %s: %v: %s", a.Inventory, err, lastLines(stderr.String(), 3))
		return
	}
	hosts, err := inventoryHosts(stdout.Bytes())
	if err != nil {
		v.add(key+".inventory", "ansible-inventory --list: %v", err)
		return
	}
	var missing []string
	for _, t := range e.Targets {
		if !hosts[t.Name] {
			missing = append(missing, t.Name)
		}
	}
	if len(missing) > 0 {
		v.add(key+".inventory", "%s has no host named %s: each target's name must be an inventory host", a.Inventory, strings.Join(missing, ", "))
	}
	pb, err := exec.LookPath("ansible-playbook")
	if err != nil {
		return
	}
	for _, f := range [][2]string{{"playbook", a.Playbook}, {"rollback_playbook", a.RollbackPlaybook}} {
		if f[1] == "" {
			continue
		}
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, pb, "--syntax-check", "-i", a.Inventory, f[1])
		cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			v.add(key+"."+f[0], "ansible-playbook --syntax-check %s: %v: %s", f[1], err, lastLines(out.String(), 3))
		}
	}
}

// inventoryHosts reads the host names of `ansible-inventory --list`.
func inventoryHosts(b []byte) (map[string]bool, error) {
	var inv map[string]json.RawMessage
	if err := json.Unmarshal(b, &inv); err != nil {
		return nil, err
	}
	hosts := map[string]bool{}
	var meta struct {
		HostVars map[string]json.RawMessage `json:"hostvars"`
	}
	if m, ok := inv["_meta"]; ok {
		_ = json.Unmarshal(m, &meta)
		for h := range meta.HostVars {
			hosts[h] = true
		}
	}
	for name, raw := range inv {
		if name == "_meta" {
			continue
		}
		var g struct {
			Hosts []string `json:"hosts"`
		}
		if json.Unmarshal(raw, &g) == nil {
			for _, h := range g.Hosts {
				hosts[h] = true
			}
		}
	}
	return hosts, nil
}

func (v *validator) sshFiles(key string, ss *ops.SSHSpec) {
	if ss.KeyFile != "" {
		fi, err := os.Stat(ss.KeyFile)
		switch {
		case err != nil:
			v.add(key+".key_file", "%v", err)
		case !fi.Mode().IsRegular():
			v.add(key+".key_file", "%s is not a file", ss.KeyFile)
		case fi.Mode().Perm()&0o077 != 0:
			v.add(key+".key_file", "%s is readable by others (mode %04o): chmod 600 it (ssh refuses such keys too)", ss.KeyFile, fi.Mode().Perm())
		default:
			if f, err := os.Open(ss.KeyFile); err != nil {
				v.add(key+".key_file", "%v", err)
			} else {
				f.Close()
			}
		}
	}
	if ss.KnownHosts != "" {
		if f, err := os.Open(ss.KnownHosts); err != nil {
			v.add(key+".known_hosts", "%v: host keys are always verified, so the file must exist", err)
		} else {
			f.Close()
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
