package snowsim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// persistDelay debounces state writes after a burst of changes.
const persistDelay = 250 * time.Millisecond

// stateFile is the on-disk form of an instance.
type stateFile struct {
	Version     int                            `json:"version"`
	SavedAt     string                         `json:"saved_at"`
	Counters    map[string]int                 `json:"counters"`
	Tables      map[string][]map[string]string `json:"tables"`
	Attachments map[string]string              `json:"attachments"` // base64 content
	Clients     []map[string]string            `json:"oauth_clients"`
}

// snapshot copies the instance; callers hold s.mu.
func (s *Sim) snapshot(withPasswords bool) *stateFile {
	st := &stateFile{
		Version: 1, SavedAt: fmtTime(s.now()), Counters: map[string]int{},
		Tables: map[string][]map[string]string{}, Attachments: map[string]string{},
	}
	for k, v := range s.d.counters {
		st.Counters[k] = v
	}
	for name, t := range s.d.tables {
		rows := make([]map[string]string, 0, len(t.rows))
		for _, r := range t.rows {
			rows = append(rows, t.toMap(r, withPasswords))
		}
		st.Tables[name] = rows
	}
	for id, b := range s.d.files {
		st.Attachments[id] = base64.StdEncoding.EncodeToString(b)
	}
	if withPasswords {
		for _, c := range s.d.clients {
			st.Clients = append(st.Clients, c)
		}
	}
	return st
}

// markDirty schedules a debounced write; callers hold s.mu.
func (s *Sim) markDirty() {
	if s.opts.StatePath == "" {
		return
	}
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	if s.closed || s.persistTimer != nil {
		return
	}
	s.persistTimer = time.AfterFunc(persistDelay, func() {
		s.timerMu.Lock()
		s.persistTimer = nil
		s.timerMu.Unlock()
		if err := s.persistUnlessClosed(); err != nil {
			s.log.Error("snowsim persist", "path", s.opts.StatePath, "err", err)
		}
	})
}

// persistUnlessClosed is the debounced write; Close does the final one.
func (s *Sim) persistUnlessClosed() error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.timerMu.Lock()
	closed := s.closed
	s.timerMu.Unlock()
	if closed {
		return nil
	}
	return s.writeState()
}

// persist writes the state file; writes never overlap, so the final write
// in Close cannot be overtaken by an older debounced one.
func (s *Sim) persist() error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	return s.writeState()
}

// writeState writes the state file atomically (temp file + rename).
func (s *Sim) writeState() error {
	s.mu.RLock()
	st := s.snapshot(true)
	s.mu.RUnlock()
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("snowsim: encode state: %w", err)
	}
	dir := filepath.Dir(s.opts.StatePath)
	tmp, err := os.CreateTemp(dir, filepath.Base(s.opts.StatePath)+".tmp-*")
	if err != nil {
		return fmt.Errorf("snowsim: write state: %w", err)
	}
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("snowsim: write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.opts.StatePath); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("snowsim: write state: %w", err)
	}
	return nil
}

// loadState reads a state file; it returns nil, nil when there is none.
func (s *Sim) loadState(path string) (*db, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snowsim: read state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("snowsim: read state %s: %w", path, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("snowsim: read state %s: unsupported version %d", path, st.Version)
	}
	d := newDB()
	for k, v := range st.Counters {
		d.counters[k] = v
	}
	for _, name := range seedOrder {
		t := d.tables[name]
		for _, m := range st.Tables[name] {
			r := t.newRecord()
			for k, v := range m {
				t.set(r, k, v)
			}
			t.add(r)
			if name == "sys_journal_field" {
				eid := t.get(r, "element_id")
				d.journal[eid] = append(d.journal[eid], r)
			}
		}
	}
	for id, enc := range st.Attachments {
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("snowsim: read state %s: attachment %s: %w", path, id, err)
		}
		d.files[id] = b
	}
	for _, c := range st.Clients {
		d.clients[c["client_id"]] = c
	}
	if len(d.clients) == 0 {
		d.clients = s.d.clients
	}
	return d, nil
}
