package retrytest

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
)

type unprocessedKey struct{}

// splitBatch keeps the first half (rounded up) of each table's write
// requests of a BatchWriteItem body and returns the rest as an
// UnprocessedItems map. ok is false when the body cannot be split (not a
// batch, or nothing to hold back).
func splitBatch(body []byte) (kept []byte, rest map[string][]json.RawMessage, ok bool) {
	var req map[string]json.RawMessage
	if json.Unmarshal(body, &req) != nil {
		return nil, nil, false
	}
	var items map[string][]json.RawMessage
	if json.Unmarshal(req["RequestItems"], &items) != nil || len(items) == 0 {
		return nil, nil, false
	}
	keep := map[string][]json.RawMessage{}
	rest = map[string][]json.RawMessage{}
	for table, reqs := range items {
		n := (len(reqs) + 1) / 2
		keep[table] = reqs[:n]
		if len(reqs) > n {
			rest[table] = reqs[n:]
		}
	}
	if len(rest) == 0 {
		return nil, nil, false
	}
	k, err := json.Marshal(keep)
	if err != nil {
		return nil, nil, false
	}
	req["RequestItems"] = k
	kept, err = json.Marshal(req)
	return kept, rest, err == nil
}

// mergeUnprocessed puts the held-back requests into a successful
// BatchWriteItem answer's UnprocessedItems, fixing x-amz-crc32 and the
// length.
func mergeUnprocessed(resp *http.Response) error {
	rest, ok := resp.Request.Context().Value(unprocessedKey{}).(map[string][]json.RawMessage)
	if !ok || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(body, &out); err != nil {
		out = map[string]json.RawMessage{}
	}
	var unprocessed map[string][]json.RawMessage
	_ = json.Unmarshal(out["UnprocessedItems"], &unprocessed)
	if unprocessed == nil {
		unprocessed = map[string][]json.RawMessage{}
	}
	for t, reqs := range rest {
		unprocessed[t] = append(unprocessed[t], reqs...)
	}
	u, _ := json.Marshal(unprocessed)
	out["UnprocessedItems"] = u
	body, _ = json.Marshal(out)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	resp.Header.Del("Content-Encoding")
	return nil
}
