package plugin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"stash.dev/redis/api/v1alpha1"
)

// document is one YAML or JSON document of a manifest file.
type document struct {
	file  string
	index int // 1-based position in the file
	line  int // first line of the document in the file
	data  []byte
}

// stashObject is what every kind of stash.dev/v1alpha1 offers: defaults and validation.
type stashObject interface {
	runtime.Object
	metav1.Object
	Default()
	Validate() field.ErrorList
}

// newStashObject returns an empty object of a stash.dev kind, or nil for an unknown kind.
func newStashObject(kind string) stashObject {
	switch kind {
	case v1alpha1.KindRepository:
		return &v1alpha1.Repository{}
	case v1alpha1.KindBackupConfiguration:
		return &v1alpha1.BackupConfiguration{}
	case v1alpha1.KindBackupSession:
		return &v1alpha1.BackupSession{}
	case v1alpha1.KindRestoreSession:
		return &v1alpha1.RestoreSession{}
	}
	return nil
}

var stashKinds = []string{v1alpha1.KindRepository, v1alpha1.KindBackupConfiguration, v1alpha1.KindBackupSession, v1alpha1.KindRestoreSession}

// manifestFiles expands paths into files: "-" is stdin, a directory contributes every
// .yaml, .yml and .json file beneath it, in lexical order.
func manifestFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		if p == "-" {
			files = append(files, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					found = append(found, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", p, err)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

var docSeparator = regexp.MustCompile(`^---(\s.*)?$`)

// splitDocuments splits a multi-document YAML stream, remembering where each document
// starts so that errors can name the line. Documents with nothing but comments are dropped.
func splitDocuments(file string, r io.Reader) ([]document, error) {
	var docs []document
	var cur bytes.Buffer
	start, lineNo, index := 1, 0, 0
	flush := func() {
		if hasContent(cur.Bytes()) {
			index++
			docs = append(docs, document{file: file, index: index, line: start, data: append([]byte(nil), cur.Bytes()...)})
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	for sc.Scan() {
		lineNo++
		if docSeparator.MatchString(sc.Text()) {
			flush()
			start = lineNo + 1
			continue
		}
		if cur.Len() == 0 && !hasContent(sc.Bytes()) {
			start = lineNo + 1 // leading blank and comment lines do not start the document
			continue
		}
		cur.Write(sc.Bytes())
		cur.WriteByte('\n')
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("read %s: line %d is longer than %d MiB (no Kubernetes object has such a line; the API server limits a request to 3 MiB)", file, lineNo+1, maxLine>>20)
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	flush()
	return docs, nil
}

// maxLine bounds one line of a manifest, and with it the memory a hostile file can make
// splitDocuments take per line.
const maxLine = 16 << 20

func hasContent(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return true
		}
	}
	return false
}

var typeError = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field (\w+)\.(\S+) of type (\S+)`)

var yamlLine = regexp.MustCompile(`line (\d+)`)

// toJSON converts a document to JSON; YAML errors name the line in the file, not in the document.
func (d document) toJSON() ([]byte, error) {
	j, err := yaml.YAMLToJSON(d.data)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
		msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
			n, _ := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
			return fmt.Sprintf("line %d", n+d.line-1)
		})
		return nil, errors.New(msg)
	}
	return j, nil
}

// decodeStrict decodes JSON into obj and reports unknown and mistyped fields with their
// paths, as the API server's strict field validation does.
func decodeStrict(data []byte, obj any) field.ErrorList {
	strictErrs, err := sigsjson.UnmarshalStrict(data, obj)
	var errs field.ErrorList
	if err != nil {
		if m := typeError.FindStringSubmatch(err.Error()); m != nil {
			errs = append(errs, &field.Error{Type: field.ErrorTypeTypeInvalid, Field: m[3], BadValue: field.OmitValueType{},
				Detail: fmt.Sprintf("must be of type %s, not %s", m[4], m[1])})
		} else {
			errs = append(errs, &field.Error{Type: field.ErrorTypeInvalid, Field: "<document>", BadValue: field.OmitValueType{}, Detail: err.Error()})
		}
	}
	for _, se := range strictErrs {
		msg := se.Error()
		if f, ok := strings.CutPrefix(msg, `unknown field "`); ok {
			errs = append(errs, &field.Error{Type: field.ErrorTypeForbidden, Field: strings.TrimSuffix(f, `"`), Detail: "unknown field", BadValue: field.OmitValueType{}})
			continue
		}
		if f, ok := strings.CutPrefix(msg, `duplicate field "`); ok {
			errs = append(errs, field.Duplicate(field.NewPath(strings.TrimSuffix(f, `"`)), field.OmitValueType{}))
			continue
		}
		errs = append(errs, &field.Error{Type: field.ErrorTypeInvalid, Field: "<document>", BadValue: field.OmitValueType{}, Detail: msg})
	}
	return errs
}

// suggestKind returns the known kind closest to a mistyped one, or "".
func suggestKind(kind string) string {
	best, bestDist := "", 4
	for _, k := range stashKinds {
		if strings.EqualFold(k, kind) {
			return k
		}
		if d := editDistance(strings.ToLower(k), strings.ToLower(kind)); d < bestDist {
			best, bestDist = k, d
		}
		if len(kind) >= 6 && strings.HasPrefix(strings.ToLower(k), strings.ToLower(kind)) {
			return k
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
