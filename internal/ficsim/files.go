package ficsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Document PDFs. FIC's documents carry `url`, "[Temporary] [Read Only]
// Issued document url of the document PDF file". The spec's example is a
// bare file name; what FIC really serves is not verified here. Without
// Config.FilesURL the sandbox serves the example's form ("doc<id>.pdf"),
// which a client cannot download; with it, an absolute link to
// <FilesURL>/_files/doc<id>.pdf that expires after FileLinkTTL, signed, as a
// temporary link would.

// FileLinkTTL is how long a document's PDF link works.
const FileLinkTTL = time.Hour

var fileRef = regexp.MustCompile(`"url":"doc(\d+)\.pdf"`)

// absoluteFileURLs turns the bare file names of a response into signed,
// expiring links (only with Config.FilesURL).
func (s *Server) absoluteFileURLs(b []byte) []byte {
	base := s.filesURL.Load()
	if base == nil || !strings.Contains(string(b), `"url":"doc`) {
		return b
	}
	exp := s.nowLocked().Add(FileLinkTTL).Unix()
	return fileRef.ReplaceAllFunc(b, func(m []byte) []byte {
		id := string(fileRef.FindSubmatch(m)[1])
		return []byte(fmt.Sprintf(`"url":"%s/_files/doc%s.pdf?exp=%d&sig=%s"`, strings.TrimRight(*base, "/"), id, exp, s.fileSig(id, exp)))
	})
}

func (s *Server) fileSig(id string, exp int64) string {
	mac := hmac.New(sha256.New, []byte("ficsim-files|"+s.cfg.Token))
	fmt.Fprintf(mac, "%s|%d", id, exp)
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// handleFile serves a document's PDF on a valid, unexpired link.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	idStr, ok := strings.CutPrefix(strings.TrimSuffix(name, ".pdf"), "doc")
	id, err := strconv.ParseInt(idStr, 10, 64)
	exp, _ := strconv.ParseInt(r.URL.Query().Get("exp"), 10, 64)
	s.mu.Lock()
	now := s.nowLocked()
	var d *Document
	for _, c := range s.comps {
		if x, found := c.docs[id]; found {
			d = x
		}
	}
	s.mu.Unlock()
	switch {
	case !ok || err != nil || !strings.HasSuffix(name, ".pdf") || !hmac.Equal([]byte(r.URL.Query().Get("sig")), []byte(s.fileSig(idStr, exp))):
		http.Error(w, "invalid link", http.StatusForbidden)
		return
	case now.Unix() > exp:
		http.Error(w, "link expired", http.StatusForbidden)
		return
	case d == nil:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	_, _ = w.Write(minimalPDF(fmt.Sprintf("Fattura n. %d del %s", d.Number, d.Date)))
}

// minimalPDF is a one-page PDF showing text (ASCII).
func minimalPDF(text string) []byte {
	text = strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(text)
	stream := fmt.Sprintf("BT /F1 14 Tf 72 760 Td (%s) Tj ET", text)
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b strings.Builder
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return []byte(b.String())
}

// SetFilesURL sets Config.FilesURL once the sandbox's address is known.
func (s *Server) SetFilesURL(u string) {
	if u == "" {
		s.filesURL.Store(nil)
		return
	}
	s.filesURL.Store(&u)
}
