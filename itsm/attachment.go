package itsm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Attachment is sys_attachment metadata.
type Attachment struct {
	SysID        string
	TableName    string
	TableSysID   string
	FileName     string
	ContentType  string
	SizeBytes    int64
	DownloadLink string
	SysCreatedOn time.Time
	Fields       Record
}

// AttachmentFromRecord converts attachment metadata.
func AttachmentFromRecord(r Record) Attachment {
	a := Attachment{
		SysID: r.Get("sys_id"), TableName: r.Get("table_name"), TableSysID: r.Get("table_sys_id"),
		FileName: r.Get("file_name"), ContentType: r.Get("content_type"),
		DownloadLink: r.Get("download_link"), SysCreatedOn: r.Time("sys_created_on"), Fields: r,
	}
	if n, ok := r.Int("size_bytes"); ok {
		a.SizeBytes = int64(n)
	}
	return a
}

// AttachFile uploads data as a file on a record (POST
// /api/now/attachment/file, raw body). contentType is mandatory for the
// instance; it defaults to text/plain. An upload is not blindly retried: an
// unknown outcome matches ErrOutcomeUnknown (list the record's attachments
// before sending again).
func (c *Client) AttachFile(ctx context.Context, table, sysID, fileName, contentType string, data []byte) (*Attachment, error) {
	if table == "" || sysID == "" || fileName == "" {
		return nil, errors.New("itsm: attach file: table, sys_id and file name are required")
	}
	if contentType == "" {
		contentType = "text/plain"
	}
	if data == nil {
		data = []byte{}
	}
	q := url.Values{"table_name": {table}, "table_sys_id": {sysID}, "file_name": {fileName}}
	resp, err := c.do(ctx, request{
		method: http.MethodPost, path: "/api/now/attachment/file", query: q,
		body: data, contentType: contentType,
	})
	if err != nil {
		return nil, fmt.Errorf("itsm: attach %s to %s %s: %w", fileName, table, sysID, err)
	}
	recs, _, err := decodeBody(resp)
	if err != nil {
		return nil, fmt.Errorf("itsm: attach %s to %s %s: %w", fileName, table, sysID, err)
	}
	if len(recs) == 0 {
		return &Attachment{
			TableName: table, TableSysID: sysID, FileName: fileName, ContentType: contentType,
			SizeBytes: int64(len(data)),
		}, nil
	}
	a := AttachmentFromRecord(recs[0])
	return &a, nil
}

// ListAttachments lists the attachment metadata of a record.
func (c *Client) ListAttachments(ctx context.Context, table, sysID string) ([]Attachment, error) {
	if _, err := queryValue("table", table); err != nil {
		return nil, err
	}
	if _, err := queryValue("sys_id", sysID); err != nil {
		return nil, err
	}
	q := url.Values{
		"sysparm_query": {"table_name=" + table + "^table_sys_id=" + sysID + "^ORDERBYsys_created_on"},
		"sysparm_limit": {"1000"},
	}
	recs, _, err := c.getRecords(ctx, "/api/now/attachment", q)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("itsm: list attachments of %s %s: %w", table, sysID, err)
	}
	out := make([]Attachment, 0, len(recs))
	for _, r := range recs {
		a := AttachmentFromRecord(r)
		if a.TableSysID != "" && a.TableSysID != sysID {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}
