package snowsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// defaultAttachmentLimit is the Attachment API's default page size (§6b).
const defaultAttachmentLimit = 1000

// maxAttachment caps uploads (glide.attachment.max_size is 1 GB on real
// instances; the simulator keeps files in memory).
const maxAttachment = 32 << 20

func (s *Sim) writeAttachment(b *bytes.Buffer, t *table, r *record, base string) {
	ob := openObj(b)
	for i, f := range t.sch.fields {
		ob.str(f.name, r.vals[i])
	}
	ob.str("download_link", base+"/api/now/attachment/"+t.get(r, "sys_id")+"/file")
	ob.close()
}

// serveAttachment implements /api/now/attachment (§6b).
func (s *Sim) serveAttachment(w http.ResponseWriter, r *http.Request, u *user, rest []string) {
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	isFile := len(rest) == 2 && rest[1] == "file"
	if !(get && isFile) {
		if e := checkAccept(r); e != nil {
			writeAPIError(w, e)
			return
		}
	}
	switch {
	case len(rest) == 0 && get:
		s.attachmentList(w, r, u)
	case len(rest) == 1 && rest[0] == "file" && r.Method == http.MethodPost:
		s.attachmentUpload(w, r, u)
	case len(rest) == 1 && get:
		s.attachmentMeta(w, r, u, rest[0])
	case isFile && get:
		s.attachmentFile(w, u, rest[0])
	case len(rest) == 1 && r.Method == http.MethodDelete:
		s.mu.Lock()
		defer s.mu.Unlock()
		t := s.d.tables["sys_attachment"]
		row := t.byID[rest[0]]
		if row == nil || !canRead(u) {
			writeAPIError(w, errNoRecord())
			return
		}
		if !canWrite(u, "sys_attachment", "Delete") {
			writeAPIError(w, errACL("Delete"))
			return
		}
		t.remove(row)
		delete(s.d.files, rest[0])
		s.markDirty()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeAPIError(w, errNoResource())
	}
}

func (s *Sim) attachmentList(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	limit, e := parseLimit(q, defaultAttachmentLimit)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	offset, e := parseOffset(q)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !canRead(u) {
		writeAPIError(w, errReadACL())
		return
	}
	t := s.d.tables["sys_attachment"]
	rows, total := s.buildQuery(t, q, q.Get("sysparm_query")).selectRows(t.rows, offset, limit)
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	var b bytes.Buffer
	b.WriteString(`{"result":[`)
	for i, row := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		s.writeAttachment(&b, t, row, baseURL(r))
	}
	b.WriteString("]}")
	writeJSON(w, http.StatusOK, b.Bytes())
}

func (s *Sim) attachmentMeta(w http.ResponseWriter, r *http.Request, u *user, id string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.d.tables["sys_attachment"]
	row := t.byID[id]
	if row == nil || !canRead(u) {
		writeAPIError(w, errNoRecord())
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"result":`)
	s.writeAttachment(&b, t, row, baseURL(r))
	b.WriteString("}")
	writeJSON(w, http.StatusOK, b.Bytes())
}

func (s *Sim) attachmentFile(w http.ResponseWriter, u *user, id string) {
	s.mu.RLock()
	t := s.d.tables["sys_attachment"]
	row := t.byID[id]
	if row == nil || !canRead(u) {
		s.mu.RUnlock()
		writeAPIError(w, errNoRecord())
		return
	}
	ct, name, data := t.get(row, "content_type"), t.get(row, "file_name"), s.d.files[id]
	s.mu.RUnlock()
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(name, `"`, "")+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func (s *Sim) attachmentUpload(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	tableName, target, fileName := q.Get("table_name"), q.Get("table_sys_id"), q.Get("file_name")
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.TrimSpace(ct) == "":
		writeAPIError(w, newAPIError(http.StatusBadRequest, "Missing Content-Type header", "Content-Type is required and is stored as the file's type"))
		return
	case tableName == "" || target == "" || fileName == "":
		writeAPIError(w, newAPIError(http.StatusBadRequest, "Missing required parameter",
			"table_name, table_sys_id and file_name are required"))
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAttachment+1))
	if err != nil {
		writeAPIError(w, newAPIError(http.StatusBadRequest, "Exception while reading request", err.Error()))
		return
	}
	if len(data) > maxAttachment {
		writeAPIError(w, newAPIError(http.StatusRequestEntityTooLarge, "Attachment too large", "The simulator accepts files up to 32 MB"))
		return
	}
	drop := s.createDrop()
	s.mu.Lock()
	defer s.mu.Unlock()
	tt := s.d.tables[tableName]
	if tt == nil || tt.byID[target] == nil || !canRead(u) {
		writeAPIError(w, errNoRecord())
		return
	}
	if !canWrite(u, "sys_attachment", "Insert") {
		writeAPIError(w, errACL("Insert"))
		return
	}
	t := s.d.tables["sys_attachment"]
	sum := sha256.Sum256(data)
	size := strconv.Itoa(len(data))
	row, e := s.insert(u, t, map[string]string{
		"table_name": tableName, "table_sys_id": target, "file_name": fileName, "content_type": ct,
		"size_bytes": size, "size_compressed": size, "compressed": "false", "hash": hex.EncodeToString(sum[:]),
	})
	if e != nil {
		writeAPIError(w, e)
		return
	}
	s.d.files[t.get(row, "sys_id")] = data
	if drop {
		dropConnection(w)
		return
	}
	w.Header().Set("Location", baseURL(r)+"/api/now/attachment/"+t.get(row, "sys_id"))
	var b bytes.Buffer
	b.WriteString(`{"result":`)
	s.writeAttachment(&b, t, row, baseURL(r))
	b.WriteString("}")
	writeJSON(w, http.StatusCreated, b.Bytes())
}
