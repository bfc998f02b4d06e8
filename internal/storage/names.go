package storage

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxBlobNameLength is Azure's limit on a blob name, in characters.
const MaxBlobNameLength = 1024

// ValidateContainerName checks Azure's container naming rules: 3 to 63
// characters, lowercase letters, digits and single hyphens, starting and
// ending with a letter or digit. The error wraps ErrInvalidName.
func ValidateContainerName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("%w: container name %q must be 3 to 63 characters long", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(name)-1 || name[i-1] == '-' {
				return fmt.Errorf("%w: container name %q must start and end with a letter or digit and have no consecutive hyphens", ErrInvalidName, name)
			}
		default:
			return fmt.Errorf("%w: container name %q may contain only lowercase letters, digits and hyphens", ErrInvalidName, name)
		}
	}
	return nil
}

// ValidateBlobName checks a blob name: valid UTF-8, 1 to 1024 characters, no
// control characters or backslashes, and "/"-separated segments that are
// neither empty nor "." nor "..". Azure itself accepts a few of these, but
// Kiln maps names onto file systems, where they would escape or alias
// paths, so it refuses them. The error wraps ErrInvalidName.
func ValidateBlobName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the blob name is empty", ErrInvalidName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: the blob name is not valid UTF-8", ErrInvalidName)
	}
	if n := utf8.RuneCountInString(name); n > MaxBlobNameLength {
		return fmt.Errorf("%w: the blob name has %d characters, more than %d", ErrInvalidName, n, MaxBlobNameLength)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("%w: blob name %q contains a control character or a backslash", ErrInvalidName, name)
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: blob name %q has an empty path segment (leading, trailing or double slash)", ErrInvalidName, name)
		case ".", "..":
			return fmt.Errorf("%w: blob name %q has a %q path segment", ErrInvalidName, name, seg)
		}
	}
	return nil
}

// maxDirSegmentBytes is the longest path segment a directory bucket
// stores: fileblob writes "<segment>.<16 hex digits>.tmp" first, and file
// names have at most 255 bytes.
const maxDirSegmentBytes = 255 - len(".0123456789abcdef.tmp")

// validateBlobName is ValidateBlobName plus the limits of this bucket. A
// directory bucket keeps blob attributes in "<name>.attrs" sidecar files,
// so no path segment may end in ".attrs" there, and a segment is a file
// name, so it has at most maxDirSegmentBytes bytes.
func (s *Storage) validateBlobName(name string) error {
	if err := ValidateBlobName(name); err != nil {
		return err
	}
	if s.dir != "" {
		for seg := range strings.SplitSeq(name, "/") {
			if strings.HasSuffix(seg, ".attrs") {
				return fmt.Errorf("%w: blob name %q: a path segment ending in \".attrs\" is reserved in a directory-backed storage", ErrInvalidName, name)
			}
			if len(seg) > maxDirSegmentBytes {
				return fmt.Errorf("%w: blob name %q: a path segment has %d bytes, more than the %d a directory-backed storage takes", ErrInvalidName, name, len(seg), maxDirSegmentBytes)
			}
		}
	}
	return nil
}

// validate checks a container name and a blob name.
func (s *Storage) validate(container, name string) error {
	if err := ValidateContainerName(container); err != nil {
		return err
	}
	return s.validateBlobName(name)
}
