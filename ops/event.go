package ops

import (
	"context"
	"time"
)

// Event is one append-only audit record: who did what, when, to what, and
// with which result. The store chains events by hash so that editing or
// deleting any of them is detectable.
type Event struct {
	Seq          int64          `json:"seq"`
	Time         time.Time      `json:"time"`
	Actor        string         `json:"actor"`
	Action       string         `json:"action"`
	Subject      string         `json:"subject,omitempty"`
	Environment  string         `json:"environment,omitempty"`
	UpdateID     string         `json:"update_id,omitempty"`
	ChangeNumber string         `json:"change,omitempty"`
	Result       string         `json:"result,omitempty"`
	Detail       map[string]any `json:"detail,omitempty"`
	PrevHash     string         `json:"prev_hash"`
	Hash         string         `json:"hash"`
	// MAC is the HMAC-SHA256 of Hash under the audit key; empty for events
	// written without one.
	MAC string `json:"mac,omitempty"`
}

// AuditVerification is the outcome of checking the audit chain end to end.
type AuditVerification struct {
	OK       bool   `json:"ok"`
	Events   int64  `json:"events"`
	HeadHash string `json:"head_hash,omitempty"`
	// BadSeq is the first event whose hash, link or sequence does not match.
	BadSeq  int64  `json:"bad_seq,omitempty"`
	Problem string `json:"problem,omitempty"`
	HeadSeq int64  `json:"head_seq,omitempty"`
	// KeyedFrom is the first event carrying a MAC (0: the chain is not
	// keyed); ChainKeyID names the key it was written with.
	KeyedFrom  int64  `json:"keyed_from,omitempty"`
	ChainKeyID string `json:"chain_key_id,omitempty"`
	// MACsChecked is true when verify held the audit key; KeyID names it.
	MACsChecked bool   `json:"macs_checked"`
	KeyID       string `json:"key_id,omitempty"`
	// AnchorsChecked counts the anchors compared with the chain;
	// AnchorProblems lists every one that disagrees.
	AnchorsChecked int      `json:"anchors_checked"`
	LastAnchorSeq  int64    `json:"last_anchor_seq,omitempty"`
	AnchorProblems []string `json:"anchor_problems,omitempty"`
	Notes          []string `json:"notes,omitempty"`
}

// AuditLog reads and verifies the audit chain.
type AuditLog interface {
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
	VerifyAudit(ctx context.Context) (AuditVerification, error)
}
