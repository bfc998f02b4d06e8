// Command quickstart runs the README's walk-through with the official Azure
// Batch SDK for Go: a pool of two nodes, a job, twenty tasks, their output.
//
// It reads the server URL and account from <data-dir>/credentials.json, the
// file `kiln server` writes ($KILN_DATA_DIR, default ~/.local/share/kiln).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/batchclient"
)

func to[T any](v T) *T { return &v }

func main() {
	ctx := context.Background()
	dataDir := os.Getenv("KILN_DATA_DIR")
	if dataDir == "" {
		home, _ := os.UserHomeDir()
		dataDir = filepath.Join(home, ".local", "share", "kiln")
	}
	var creds struct{ URL, AccountName, AccountKey, ServerFingerprint string }
	b, err := os.ReadFile(filepath.Join(dataDir, "credentials.json"))
	if err != nil {
		log.Fatalf("no Kiln server credentials (start `kiln server` first): %v", err)
	}
	if err := json.Unmarshal(b, &creds); err != nil {
		log.Fatal(err)
	}
	// A server started with --tls has a self-signed certificate: trust it
	// by the fingerprint it wrote next to the key.
	opts := &azbatch.ClientOptions{}
	if creds.ServerFingerprint != "" {
		hc, err := batchclient.PinnedTransport(creds.URL, creds.ServerFingerprint)
		if err != nil {
			log.Fatal(err)
		}
		opts.Transport = hc
	}
	client, err := batchclient.New(creds.URL, creds.AccountName, creds.AccountKey, opts)
	if err != nil {
		log.Fatal(err)
	}

	pool, job := "quickstart-pool", "quickstart-job"
	if _, err := client.CreatePool(ctx, azbatch.CreatePoolContent{
		ID: to(pool), VMSize: to("standard_d2s_v3"),
		TargetDedicatedNodes: to[int32](2), TaskSlotsPerNode: to[int32](4),
	}, nil); err != nil {
		log.Fatal(err)
	}
	if _, err := client.CreateJob(ctx, azbatch.CreateJobContent{ID: to(job), PoolInfo: &azbatch.PoolInfo{PoolID: to(pool)}}, nil); err != nil {
		log.Fatal(err)
	}
	var tasks []azbatch.CreateTaskContent
	for i := 1; i <= 20; i++ {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID:          to(fmt.Sprintf("task%d", i)),
			CommandLine: to(`/bin/sh -c 'echo hello from $AZ_BATCH_TASK_ID on $AZ_BATCH_NODE_ID'`),
		})
	}
	if _, err := client.CreateTaskCollection(ctx, job, azbatch.TaskGroup{Value: tasks}, nil); err != nil {
		log.Fatal(err)
	}
	for {
		c, err := client.GetJobTaskCounts(ctx, job, nil)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("active %d, running %d, completed %d\n", *c.TaskCounts.Active, *c.TaskCounts.Running, *c.TaskCounts.Completed)
		if *c.TaskCounts.Active+*c.TaskCounts.Running == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	file, err := client.GetTaskFile(ctx, job, "task1", "stdout.txt", nil)
	if err != nil {
		log.Fatal(err)
	}
	out, _ := io.ReadAll(file.Body)
	file.Body.Close()
	fmt.Printf("task1 says: %s", out)

	if _, err := client.DeleteJob(ctx, job, nil); err != nil {
		log.Fatal(err)
	}
	if _, err := client.DeletePool(ctx, pool, nil); err != nil {
		log.Fatal(err)
	}
}
