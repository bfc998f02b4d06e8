package storage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gocloud.dev/blob"
)

// MaxBlocks is Azure's limit on the blocks of one block list.
const MaxBlocks = 50000

// Block uploads are Azure's Put Block and Put Block List, which the azblob
// SDK uses for big files: blocks are staged as hidden keys, and committing
// a list streams them in order into the blob.

// blockDir is the key prefix of the blocks staged for a blob. The blob name
// is hashed so that any name fits in one path segment.
func blockDir(container, name string) string {
	sum := sha256.Sum256([]byte(name))
	return blocksPrefix + container + "/" + hex.EncodeToString(sum[:]) + "/"
}

// blockKey is the key of one staged block. The id is re-encoded in
// URL-safe base64, which has no "/".
func blockKey(container, name string, id []byte) string {
	return blockDir(container, name) + base64.RawURLEncoding.EncodeToString(id)
}

// decodeBlockID decodes an Azure block id: base64 of 1 to 64 bytes.
func decodeBlockID(id string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(id)
	if err != nil || len(b) == 0 || len(b) > 64 {
		return nil, fmt.Errorf("%w: %q must be base64 of 1 to 64 bytes", ErrInvalidBlockID, id)
	}
	return b, nil
}

// PutBlock stages one block of a blob under a base64 block id, streaming
// r; staging an id again replaces the block. contentMD5, when set, is
// checked as in Put.
func (s *Storage) PutBlock(ctx context.Context, container, name, blockID string, r io.Reader, contentMD5 []byte) error {
	if err := s.validate(container, name); err != nil {
		return err
	}
	id, err := decodeBlockID(blockID)
	if err != nil {
		return err
	}
	if err := s.requireContainer(ctx, container); err != nil {
		return err
	}
	if err := s.write(ctx, blockKey(container, name, id), r, PutOptions{ContentMD5: contentMD5}); err != nil {
		return fmt.Errorf("storage: put block of %s/%s: %w", container, name, err)
	}
	return nil
}

// CommitBlocks writes a blob from staged blocks, in the order of blockIDs
// (an id may repeat), then discards every block staged for the blob, as
// Azure's Put Block List does with uncommitted blocks. The blocks stream
// one after the other into the blob; nothing is held in memory. When a
// block is missing the call fails with ErrInvalidBlockList and the blob is
// unchanged.
func (s *Storage) CommitBlocks(ctx context.Context, container, name string, blockIDs []string, opts PutOptions) (BlobInfo, error) {
	if err := s.validate(container, name); err != nil {
		return BlobInfo{}, err
	}
	if len(blockIDs) > MaxBlocks {
		return BlobInfo{}, fmt.Errorf("%w: %d blocks, more than %d", ErrInvalidBlockList, len(blockIDs), MaxBlocks)
	}
	keys := make([]string, len(blockIDs))
	for i, id := range blockIDs {
		b, err := decodeBlockID(id)
		if err != nil {
			return BlobInfo{}, fmt.Errorf("%w: %v", ErrInvalidBlockList, err)
		}
		keys[i] = blockKey(container, name, b)
	}
	if err := s.requireContainer(ctx, container); err != nil {
		return BlobInfo{}, err
	}
	// A missing block surfaces as a read error in the middle of the copy,
	// which abandons the write: no per-block existence check is needed.
	src := &blocksReader{ctx: ctx, bucket: s.bucket, keys: keys, ids: blockIDs}
	defer src.Close()
	key := blobKey(container, name)
	opts.ContentMD5 = nil // a property of the blob in Azure, not a check of the list
	if err := s.write(ctx, key, src, opts); err != nil {
		return BlobInfo{}, fmt.Errorf("storage: commit blocks of %s/%s: %w", container, name, err)
	}
	_ = s.deleteBlocks(ctx, container, name)
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("storage: commit blocks of %s/%s: %w", container, name, err)
	}
	return infoFrom(name, a), nil
}

// deleteBlocks discards the blocks staged for a blob and, in a directory
// bucket, their directory (nobody else writes there).
func (s *Storage) deleteBlocks(ctx context.Context, container, name string) error {
	dir := blockDir(container, name)
	if err := s.deletePrefix(ctx, dir); err != nil {
		return err
	}
	if s.dir != "" {
		_ = os.Remove(filepath.Join(s.dir, filepath.FromSlash(dir)))
	}
	return nil
}

// blocksReader reads staged blocks one after the other, opening each only
// when the previous one is done, so that a 50,000-block list holds one
// open block at a time.
type blocksReader struct {
	ctx    context.Context
	bucket *blob.Bucket
	keys   []string
	ids    []string
	next   int
	cur    *blob.Reader
}

func (r *blocksReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if r.next == len(r.keys) {
				return 0, io.EOF
			}
			cur, err := r.bucket.NewReader(r.ctx, r.keys[r.next], nil)
			if isNotFound(err) {
				return 0, fmt.Errorf("%w: block %q was not staged", ErrInvalidBlockList, r.ids[r.next])
			}
			if err != nil {
				return 0, err
			}
			r.cur = cur
			r.next++
		}
		n, err := r.cur.Read(p)
		if err == io.EOF {
			_ = r.cur.Close()
			r.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Close closes the block being read, if any.
func (r *blocksReader) Close() error {
	if r.cur != nil {
		err := r.cur.Close()
		r.cur = nil
		return err
	}
	return nil
}
