package schema_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

// queuedBuild records a queued build of project p.
func queuedBuild(t *testing.T, store *schema.Store, p schema.Project) schema.Build {
	t.Helper()
	b, err := store.CreateBuild(t.Context(), schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc123"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildOn records a build of project p running on node (its first attempt).
func buildOn(t *testing.T, store *schema.Store, p schema.Project, node string) schema.Build {
	t.Helper()
	b := queuedBuild(t, store, p)
	if _, err := store.ClaimBuild(t.Context(), b.ID, node); err != nil {
		t.Fatalf("claim build %d on %s: %v", b.ID, node, err)
	}
	return reload(t, store, b.ID)
}

func reload(t *testing.T, store *schema.Store, id int64) schema.Build {
	t.Helper()
	b, err := store.BuildByID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stopHeartbeat stands for a node that stopped heartbeating (killed, its
// machine lost): its row stays, not stopped, but its last heartbeat moves
// ago into the past by the database's clock.
func stopHeartbeat(t *testing.T, store *schema.Store, id string, ago time.Duration) {
	t.Helper()
	if _, err := store.Pool().Exec(t.Context(),
		`UPDATE nodes SET last_seen = now() - $2::bigint * interval '1 microsecond' WHERE id = $1`, id, ago.Microseconds()); err != nil {
		t.Fatal(err)
	}
}

func registerWorker(t *testing.T, store *schema.Store, id string) {
	t.Helper()
	if err := store.RegisterNode(t.Context(), schema.Node{ID: id, Roles: []string{"worker"}, Version: "v1"}); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func TestClaimBuildAndFencedFinish(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "claims")
	b := queuedBuild(t, store, p)
	if b.Attempt != 0 || b.NodeID != "" {
		t.Fatalf("new build: attempt %d on %q, want 0 on no node", b.Attempt, b.NodeID)
	}

	attempt, err := store.ClaimBuild(ctx, b.ID, "worker-a")
	if err != nil || attempt != 1 {
		t.Fatalf("first claim = %d, %v; want attempt 1", attempt, err)
	}
	got := reload(t, store, b.ID)
	if got.Status != schema.BuildRunning || got.NodeID != "worker-a" || got.Attempt != 1 || got.StartedAt == nil {
		t.Fatalf("after the claim: status %s on %q attempt %d started %v", got.Status, got.NodeID, got.Attempt, got.StartedAt)
	}

	// A second worker given the same job (River retrying it, say) must not
	// run the build twice.
	if _, err := store.ClaimBuild(ctx, b.ID, "worker-b"); !errors.Is(err, schema.ErrConflict) {
		t.Fatalf("second claim: %v, want ErrConflict", err)
	}
	if got := reload(t, store, b.ID); got.NodeID != "worker-a" || got.Attempt != 1 {
		t.Fatalf("a refused claim changed the build: on %q attempt %d", got.NodeID, got.Attempt)
	}

	// worker-a is thought dead: the build goes back to the queue and
	// worker-b takes it.
	if err := store.SetBuildStage(ctx, b.ID, schema.StageInstall); err != nil {
		t.Fatal(err)
	}
	if err := store.RequeueBuild(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	got = reload(t, store, b.ID)
	if got.Status != schema.BuildQueued || got.NodeID != "" || got.Stage != "" || got.Attempt != 1 {
		t.Fatalf("after the requeue: status %s on %q stage %q attempt %d", got.Status, got.NodeID, got.Stage, got.Attempt)
	}
	attempt, err = store.ClaimBuild(ctx, b.ID, "worker-b")
	if err != nil || attempt != 2 {
		t.Fatalf("claim after the requeue = %d, %v; want attempt 2", attempt, err)
	}

	// worker-a was alive after all and finishes its attempt: it must not
	// overwrite what the attempt that replaced it will record.
	if err := store.FinishAttempt(ctx, b.ID, 1, schema.BuildSucceeded, ""); !errors.Is(err, schema.ErrConflict) {
		t.Fatalf("finish of the stale attempt: %v, want ErrConflict", err)
	}
	got = reload(t, store, b.ID)
	if got.Status != schema.BuildRunning || got.NodeID != "worker-b" || got.FinishedAt != nil {
		t.Fatalf("the stale finish changed the build: status %s on %q finished %v", got.Status, got.NodeID, got.FinishedAt)
	}

	if err := store.FinishAttempt(ctx, b.ID, 1, schema.BuildRunning, ""); !errors.Is(err, schema.ErrInvalid) {
		t.Fatalf("finish with a status that is not final: %v, want ErrInvalid", err)
	}
	if err := store.FinishAttempt(ctx, b.ID, 2, schema.BuildFailed, "install failed"); err != nil {
		t.Fatalf("finish of the current attempt: %v", err)
	}
	got = reload(t, store, b.ID)
	if got.Status != schema.BuildFailed || got.Error != "install failed" || got.FinishedAt == nil {
		t.Fatalf("after the finish: status %s error %q finished %v", got.Status, got.Error, got.FinishedAt)
	}
	// Finished is final: a second finish and a requeue change nothing.
	if err := store.FinishAttempt(ctx, b.ID, 2, schema.BuildSucceeded, ""); !errors.Is(err, schema.ErrConflict) {
		t.Fatalf("second finish: %v, want ErrConflict", err)
	}
	if err := store.RequeueBuild(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if got := reload(t, store, b.ID); got.Status != schema.BuildFailed || got.NodeID != "worker-b" {
		t.Fatalf("a finished build was changed: status %s on %q", got.Status, got.NodeID)
	}
	if _, err := store.ClaimBuild(ctx, b.ID, "worker-c"); !errors.Is(err, schema.ErrConflict) {
		t.Fatalf("claim of a finished build: %v, want ErrConflict", err)
	}
}

func TestOrphanedBuilds(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "orphans")
	registerWorker(t, store, "live-1")
	registerWorker(t, store, "dead-1")
	registerWorker(t, store, "gone-1")
	// dead-1 stopped heartbeating a minute ago without saying so (killed);
	// gone-1 said it stopped.
	stopHeartbeat(t, store, "dead-1", time.Minute)
	if err := store.StopNode(ctx, "gone-1"); err != nil {
		t.Fatal(err)
	}

	onLive := buildOn(t, store, p, "live-1")
	onDead := buildOn(t, store, p, "dead-1")
	onGone := buildOn(t, store, p, "gone-1")
	// A node that has no row at all (an operator deleted it) is not live either.
	onUnknown := buildOn(t, store, p, "never-1")
	// A build started before nodes existed (StartBuild records no node)
	// belongs to no node, so no reaper may take it.
	noNode := queuedBuild(t, store, p)
	if err := store.StartBuild(ctx, noNode.ID); err != nil {
		t.Fatal(err)
	}
	queued := queuedBuild(t, store, p)
	finished := buildOn(t, store, p, "dead-1")
	if err := store.FinishAttempt(ctx, finished.ID, finished.Attempt, schema.BuildSucceeded, ""); err != nil {
		t.Fatal(err)
	}

	ids := func(deadAfter time.Duration) []int64 {
		t.Helper()
		bs, err := store.OrphanedBuilds(ctx, deadAfter)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, b := range bs {
			if b.Status != schema.BuildRunning {
				t.Errorf("orphan %d has status %s", b.ID, b.Status)
			}
			ids = append(ids, b.ID)
		}
		return ids
	}
	want := []int64{onDead.ID, onGone.ID, onUnknown.ID}
	if got := ids(30 * time.Second); !slices.Equal(got, want) {
		t.Fatalf("OrphanedBuilds(30s) = %v, want %v (live %d, no node %d, queued %d, finished %d excluded)",
			got, want, onLive.ID, noNode.ID, queued.ID, finished.ID)
	}
	// Seen a minute ago is alive for a reaper that waits two minutes.
	if got, want := ids(2*time.Minute), []int64{onGone.ID, onUnknown.ID}; !slices.Equal(got, want) {
		t.Fatalf("OrphanedBuilds(2m) = %v, want %v", got, want)
	}

	t.Run("a reaper skips the builds another reaper holds", func(t *testing.T) {
		tx, err := store.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		held, err := store.WithTx(tx).OrphanedBuilds(ctx, 30*time.Second)
		if err != nil || len(held) != len(want) {
			t.Fatalf("first reaper got %d orphans, %v", len(held), err)
		}
		// The second reaper neither waits nor takes them.
		var other []schema.Build
		err = store.InTx(ctx, func(tx2 pgx.Tx) error {
			other, err = store.WithTx(tx2).OrphanedBuilds(ctx, 30*time.Second)
			return err
		})
		if err != nil || len(other) != 0 {
			t.Fatalf("second reaper got %d orphans, %v; want none", len(other), err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if got := ids(30 * time.Second); !slices.Equal(got, want) {
			t.Fatalf("after the first reaper let go: %v, want %v", got, want)
		}
	})

	t.Run("a heartbeat brings the node's builds back", func(t *testing.T) {
		if err := heartbeat(ctx, store, "dead-1"); err != nil {
			t.Fatal(err)
		}
		if got, want := ids(30*time.Second), []int64{onGone.ID, onUnknown.ID}; !slices.Equal(got, want) {
			t.Fatalf("after dead-1's heartbeat: %v, want %v", got, want)
		}
	})
}

// clusterBlob stores data as a blob and returns its sha256.
func clusterBlob(t *testing.T, store *schema.Store, data string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(data))
	sha := hex.EncodeToString(sum[:])
	if err := store.PutBlob(t.Context(), sha, int64(len(data)), bytes.NewReader([]byte(data))); err != nil {
		t.Fatal(err)
	}
	return sha
}

func blobStored(t *testing.T, store *schema.Store, sha string) bool {
	t.Helper()
	ok, err := store.BlobExists(t.Context(), sha)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestReleaseBlobWhileBuildsNeedIt(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "blobs")
	release := func(sha string) bool {
		t.Helper()
		ok, err := store.ReleaseBlob(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	t.Run("artifact of an uncollected build", func(t *testing.T) {
		sha := clusterBlob(t, store, "artifact bytes")
		b := buildOn(t, store, p, "worker-a")
		if err := store.SetBuildArtifact(ctx, b.ID, schema.Artifact{Kind: "static", Path: "x.tar.gz", SHA256: sha, Size: 14}); err != nil {
			t.Fatal(err)
		}
		if err := store.FinishAttempt(ctx, b.ID, b.Attempt, schema.BuildSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		// Finished, but kept by retention: its URL still serves the artifact.
		if release(sha) || !blobStored(t, store, sha) {
			t.Fatal("released the artifact of a kept build")
		}
		if err := store.MarkBuildCollected(ctx, b.ID, 3); err != nil {
			t.Fatal(err)
		}
		if !release(sha) || blobStored(t, store, sha) {
			t.Fatal("the artifact of a collected build was not released")
		}
		if release(sha) {
			t.Fatal("released a blob twice")
		}
	})

	t.Run("source of an unfinished build", func(t *testing.T) {
		sha := clusterBlob(t, store, "source snapshot")
		queued := queuedBuild(t, store, p)
		running := buildOn(t, store, p, "worker-a")
		for _, b := range []schema.Build{queued, running} {
			if err := store.SetBuildSource(ctx, b.ID, sha); err != nil {
				t.Fatal(err)
			}
		}
		if got := reload(t, store, queued.ID).SourceSHA256; got != sha {
			t.Fatalf("SourceSHA256 = %q, want %q", got, sha)
		}
		if release(sha) {
			t.Fatal("released the source of a queued and a running build")
		}
		if err := store.FinishAttempt(ctx, running.ID, running.Attempt, schema.BuildFailed, "boom"); err != nil {
			t.Fatal(err)
		}
		if release(sha) || !blobStored(t, store, sha) {
			t.Fatal("released the source of a queued build")
		}
		if _, err := store.ClaimBuild(ctx, queued.ID, "worker-b"); err != nil {
			t.Fatal(err)
		}
		if release(sha) {
			t.Fatal("released the source of a running build")
		}
		if err := store.FinishAttempt(ctx, queued.ID, 1, schema.BuildCanceled, ""); err != nil {
			t.Fatal(err)
		}
		if !release(sha) || blobStored(t, store, sha) {
			t.Fatal("the source of finished builds was not released")
		}
	})

	t.Run("unreferenced blobs by age", func(t *testing.T) {
		old := clusterBlob(t, store, "old and unused")
		fresh := clusterBlob(t, store, "fresh and unused")
		kept := clusterBlob(t, store, "old and the artifact of a kept build")
		b := buildOn(t, store, p, "worker-a")
		if err := store.SetBuildArtifact(ctx, b.ID, schema.Artifact{Kind: "static", Path: "y.tar.gz", SHA256: kept, Size: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Pool().Exec(ctx, `UPDATE blobs SET created_at = now() - interval '2 hours' WHERE sha256 = ANY ($1)`,
			[]string{old, kept}); err != nil {
			t.Fatal(err)
		}
		deleted, err := store.DeleteUnreferencedBlobs(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(deleted, []string{old}) {
			t.Fatalf("DeleteUnreferencedBlobs(1h) = %v, want only the old unused %s", deleted, old)
		}
		if blobStored(t, store, old) || !blobStored(t, store, fresh) || !blobStored(t, store, kept) {
			t.Fatal("the blobs stored do not match what was deleted")
		}
		// Younger than the age: a build may be about to name it.
		if deleted, err := store.DeleteUnreferencedBlobs(ctx, time.Hour); err != nil || len(deleted) != 0 {
			t.Fatalf("second pass deleted %v, %v", deleted, err)
		}
	})
}

func TestEdgeReports(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "edges")
	b := buildOn(t, store, p, "worker-a")
	d, err := store.StartDeployment(ctx, p.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	other, err := store.StartDeployment(ctx, p.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	report := func(r schema.EdgeReport) {
		t.Helper()
		if err := store.ReportEdge(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	report(schema.EdgeReport{DeploymentID: d.ID, NodeID: "edge-b", Ready: false, Error: "health check failed"})
	report(schema.EdgeReport{DeploymentID: d.ID, NodeID: "edge-a", Ready: true})
	report(schema.EdgeReport{DeploymentID: other.ID, NodeID: "edge-a", Ready: false, Error: "other deployment"})
	first, err := store.EdgeReports(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].NodeID != "edge-a" || !first[0].Ready || first[1].NodeID != "edge-b" ||
		first[1].Ready || first[1].Error != "health check failed" || first[1].DeploymentID != d.ID || first[1].ReportedAt.IsZero() {
		t.Fatalf("EdgeReports = %+v", first)
	}

	// edge-b tries again and is ready: its report replaces the first.
	report(schema.EdgeReport{DeploymentID: d.ID, NodeID: "edge-b", Ready: true})
	got, err := store.EdgeReports(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[1].Ready || got[1].Error != "" || got[1].ReportedAt.Before(first[1].ReportedAt) {
		t.Fatalf("after edge-b's second report: %+v", got)
	}
	if got, err := store.EdgeReports(ctx, other.ID); err != nil || len(got) != 1 || got[0].Error != "other deployment" {
		t.Fatalf("the other deployment's reports: %+v, %v", got, err)
	}
	if got, err := store.EdgeReports(ctx, d.ID+other.ID+100); err != nil || len(got) != 0 {
		t.Fatalf("reports of no deployment: %+v, %v", got, err)
	}
}

func TestActiveBuildOf(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "active")
	if _, err := store.ActiveBuildOf(ctx, p.ID); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("before any deployment: %v, want ErrNotFound", err)
	}
	first := buildOn(t, store, p, "worker-a")
	second := buildOn(t, store, p, "worker-b")
	d1, err := store.RecordActivation(ctx, p.ID, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A deployment still starting serves nothing yet.
	if _, err := store.StartDeployment(ctx, p.ID, second.ID); err != nil {
		t.Fatal(err)
	}
	got, err := store.ActiveBuildOf(ctx, p.ID)
	if err != nil || got.ID != first.ID || got.DeploymentID != d1.ID || got.ProjectName != "active" || got.NodeID != "worker-a" {
		t.Fatalf("ActiveBuildOf = build %d deployment %d (%q on %q), %v; want build %d deployment %d",
			got.ID, got.DeploymentID, got.ProjectName, got.NodeID, err, first.ID, d1.ID)
	}
	d2, err := store.RecordActivation(ctx, p.ID, second.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := store.ActiveBuildOf(ctx, p.ID); err != nil || got.ID != second.ID || got.DeploymentID != d2.ID {
		t.Fatalf("after the second activation: build %d deployment %d, %v", got.ID, got.DeploymentID, err)
	}
	// Another project's production is its own.
	q := schematest.Project(t, store, "elsewhere")
	if _, err := store.ActiveBuildOf(ctx, q.ID); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("a project without deployments: %v, want ErrNotFound", err)
	}
}
