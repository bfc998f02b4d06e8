package applications

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kilnbatch/kiln/internal/storage"
)

// StorageBlobs adapts Kiln storage to what the registry needs.
func StorageBlobs(st *storage.Storage) Blobs { return storageBlobs{st} }

type storageBlobs struct{ st *storage.Storage }

func (b storageBlobs) EnsureContainer(ctx context.Context, name string) error {
	err := b.st.CreateContainer(ctx, name)
	if errors.Is(err, storage.ErrContainerExists) {
		return nil
	}
	return err
}

func (b storageBlobs) Put(ctx context.Context, container, name string, r io.Reader, contentType string) error {
	_, err := b.st.Put(ctx, container, name, r, storage.PutOptions{ContentType: contentType})
	return err
}

func (b storageBlobs) Get(ctx context.Context, container, name string) (io.ReadCloser, error) {
	return b.st.NewReader(ctx, container, name, 0, -1)
}

func (b storageBlobs) Delete(ctx context.Context, container, name string) error {
	err := b.st.DeleteBlob(ctx, container, name)
	if errors.Is(err, storage.ErrBlobNotFound) {
		return nil
	}
	return err
}

func (b storageBlobs) List(ctx context.Context, container, prefix string) ([]string, error) {
	var names []string
	marker := ""
	for {
		page, next, err := b.st.ListBlobs(ctx, container, prefix, marker, storage.MaxListResults)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", container, err)
		}
		for _, bi := range page {
			names = append(names, bi.Name)
		}
		if next == "" {
			return names, nil
		}
		marker = next
	}
}
