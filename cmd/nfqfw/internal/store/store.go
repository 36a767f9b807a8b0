package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Version is the envelope version Save writes and Load reads.
const Version = 1

// envelope is the on-disk shape of a state file.
type envelope struct {
	Version int             `json:"version"`
	SavedAt time.Time       `json:"saved_at"`
	Data    json.RawMessage `json:"data"`
}

// envelopeAround returns what goes before and after the data (compact
// JSON, as json.Marshal returns it) of an envelope saved at: head, data,
// tail are what json.Marshal of the envelope writes, and a newline. Save
// writes the three, without copying and validating data again
// (json.Marshal compacts a RawMessage: 30% of a save of 100,000 bans,
// BenchmarkSave).
func envelopeAround(at time.Time) (head, tail []byte, err error) {
	t, err := at.MarshalJSON()
	if err != nil {
		return nil, nil, err
	}
	head = append(strconv.AppendInt([]byte(`{"version":`), Version, 10), `,"saved_at":`...)
	head = append(append(head, t...), `,"data":`...)
	return head, []byte("}\n"), nil
}

// Save writes v as JSON inside a versioned envelope to path, atomically and
// durably: temporary file in the same directory (mode 0600), fsync, rename,
// fsync of the directory. The directory must exist.
//
// A v that is a JSONWriter writes its JSON itself, in pieces; any other is
// encoded by json.Marshal.
func Save(path string, v any) error {
	var data []byte
	jw, streams := v.(JSONWriter)
	if !streams {
		var err error
		if data, err = json.Marshal(v); err != nil {
			return fmt.Errorf("store: save %s: encode: %w", path, err)
		}
	}
	head, tail, err := envelopeAround(time.Now().UTC())
	if err != nil {
		return fmt.Errorf("store: save %s: encode envelope: %w", path, err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("store: save %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("store: save %s: chmod: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	w.Write(head)
	if streams {
		if err := jw.WriteJSON(w); err != nil {
			return fmt.Errorf("store: save %s: encode: %w", path, err)
		}
	} else {
		w.Write(data)
	}
	w.Write(tail)
	if err := w.Flush(); err != nil {
		return fmt.Errorf("store: save %s: write: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: save %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: save %s: close: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store: save %s: rename: %w", path, err)
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("store: save %s: fsync directory: %w", path, err)
	}
	return nil
}

// JSONWriter is a state that writes its own compact JSON to w, in pieces:
// a state of 100,000 bans marshalled at once grew a buffer of tens of
// megabytes by doubling, a third of a save's CPU.
type JSONWriter interface {
	WriteJSON(w io.Writer) error
}

// JSONAppender is an item that appends its JSON, as json.Marshal encodes
// it, to b: WriteWithArray uses it instead of reflection.
type JSONAppender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// arrayChunk is how many items WriteWithArray marshals at once.
const arrayChunk = 1024

// WriteWithArray writes the JSON object json.Marshal makes of obj with
// the field key: items added last, marshalled arrayChunk items at a time
// (by their AppendJSON when *T is a JSONAppender);
// no field when items is empty (as omitempty). obj must marshal to an
// object without key.
func WriteWithArray[T any](w io.Writer, obj any, key string, items []T) error {
	head, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	if len(head) < 2 || head[0] != '{' || head[len(head)-1] != '}' {
		return fmt.Errorf("%T does not encode to a JSON object", obj)
	}
	if len(items) == 0 {
		_, err := w.Write(head)
		return err
	}
	k, err := json.Marshal(key)
	if err != nil {
		return err
	}
	out := head[:len(head)-1]
	if len(head) > 2 {
		out = append(out, ',')
	}
	out = append(append(out, k...), ':', '[')
	if _, err := w.Write(out); err != nil {
		return err
	}
	_, appends := any(&items[0]).(JSONAppender)
	var buf []byte
	for i := 0; i < len(items); i += arrayChunk {
		chunk := items[i:min(i+arrayChunk, len(items))]
		var b []byte
		if appends {
			buf = buf[:0]
			for j := range chunk {
				if j > 0 {
					buf = append(buf, ',')
				}
				if buf, err = any(&chunk[j]).(JSONAppender).AppendJSON(buf); err != nil {
					return err
				}
			}
			b = buf
		} else {
			if b, err = json.Marshal(chunk); err != nil {
				return err
			}
			b = b[1 : len(b)-1] // the chunk's items, without its brackets
		}
		if i > 0 {
			if _, err := w.Write([]byte{','}); err != nil {
				return err
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err = w.Write([]byte("]}"))
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load reads the state file at path into v. A missing file is not an error:
// v is left untouched (the empty state). A file that cannot be decoded is
// moved aside to path+".corrupt-<unixtime>" and an error wrapping ErrCorrupt
// (or ErrVersion) is returned that names where it went; v is then left in an
// unspecified state and should be discarded by the caller. Other I/O errors
// (e.g. permission denied) are returned as they are.
func Load(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: load %s: %w", path, err)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return moveAside(path, ErrCorrupt, err.Error())
	}
	switch {
	case env.Version == 0 || len(env.Data) == 0:
		return moveAside(path, ErrCorrupt, "no version or data")
	case env.Version != Version:
		return moveAside(path, ErrVersion, "version "+strconv.Itoa(env.Version))
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return moveAside(path, ErrCorrupt, err.Error())
	}
	return nil
}

// moveAside renames a bad state file out of the way so the next start does
// not trip over it, keeping it for inspection.
func moveAside(path string, sentinel error, detail string) error {
	aside := path + ".corrupt-" + strconv.FormatInt(time.Now().Unix(), 10)
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("store: load %s: %w (%s), and moving it aside failed: %v", path, sentinel, detail, err)
	}
	return fmt.Errorf("store: load %s: %w (%s); moved to %s", path, sentinel, detail, aside)
}
