package service

import (
	"encoding/json"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// encodeTask writes a task document in Azure's wire JSON. It produces what
// azbatch.Task.MarshalJSON produces, several times faster: the generated
// marshaller builds a map per object, while the mirror structs below let
// encoding/json encode fields directly. Properties that are rare on tasks
// are still encoded by azbatch and embedded as they come.
// TestEncodeTaskMatchesAzbatch keeps the two in step.
func encodeTask(t *azbatch.Task) ([]byte, error) {
	m := taskJSON{
		CommandLine:                 t.CommandLine,
		CreationTime:                t.CreationTime,
		DisplayName:                 t.DisplayName,
		ETag:                        (*string)(t.ETag),
		ID:                          t.ID,
		LastModified:                t.LastModified,
		PreviousState:               t.PreviousState,
		PreviousStateTransitionTime: t.PreviousStateTransitionTime,
		RequiredSlots:               t.RequiredSlots,
		State:                       t.State,
		StateTransitionTime:         t.StateTransitionTime,
		URL:                         t.URL,
	}
	if c := t.Constraints; c != nil {
		m.Constraints = &constraintsJSON{MaxTaskRetryCount: c.MaxTaskRetryCount, MaxWallClockTime: c.MaxWallClockTime, RetentionTime: c.RetentionTime}
	}
	if t.EnvironmentSettings != nil {
		m.EnvironmentSettings = make([]nameValueJSON, len(t.EnvironmentSettings))
		for i, e := range t.EnvironmentSettings {
			m.EnvironmentSettings[i] = nameValueJSON{Name: e.Name, Value: e.Value}
		}
	}
	if ei := t.ExecutionInfo; ei != nil {
		m.ExecutionInfo = &execInfoJSON{
			EndTime: ei.EndTime, ExitCode: ei.ExitCode, LastRequeueTime: ei.LastRequeueTime, LastRetryTime: ei.LastRetryTime,
			RequeueCount: ei.RequeueCount, Result: ei.Result, RetryCount: ei.RetryCount, StartTime: ei.StartTime,
		}
		if f := ei.FailureInfo; f != nil {
			fi := &failureJSON{Category: f.Category, Code: f.Code, Message: f.Message}
			if f.Details != nil {
				fi.Details = make([]nameValueJSON, len(f.Details))
				for i, d := range f.Details {
					fi.Details[i] = nameValueJSON{Name: d.Name, Value: d.Value}
				}
			}
			m.ExecutionInfo.FailureInfo = fi
		}
		if err := raw(&m.ExecutionInfo.ContainerInfo, ei.ContainerInfo); err != nil {
			return nil, err
		}
	}
	if n := t.NodeInfo; n != nil {
		m.NodeInfo = &nodeInfoJSON{AffinityID: n.AffinityID, NodeID: n.NodeID, NodeURL: n.NodeURL, PoolID: n.PoolID, TaskRootDirectory: n.TaskRootDirectory, TaskRootDirectoryURL: n.TaskRootDirectoryURL}
	}
	if u := t.UserIdentity; u != nil {
		m.UserIdentity = &userIdentityJSON{Username: u.Username}
		if a := u.AutoUser; a != nil {
			m.UserIdentity.AutoUser = &autoUserJSON{ElevationLevel: a.ElevationLevel, Scope: a.Scope}
		}
	}
	for _, r := range []struct {
		dst *json.RawMessage
		v   json.Marshaler
		nil bool
	}{
		{&m.AffinityInfo, t.AffinityInfo, t.AffinityInfo == nil},
		{&m.AuthenticationTokenSettings, t.AuthenticationTokenSettings, t.AuthenticationTokenSettings == nil},
		{&m.ContainerSettings, t.ContainerSettings, t.ContainerSettings == nil},
		{&m.DependsOn, t.DependsOn, t.DependsOn == nil},
		{&m.ExitConditions, t.ExitConditions, t.ExitConditions == nil},
		{&m.MultiInstanceSettings, t.MultiInstanceSettings, t.MultiInstanceSettings == nil},
		{&m.Stats, t.Stats, t.Stats == nil},
	} {
		if r.nil {
			continue
		}
		b, err := r.v.MarshalJSON()
		if err != nil {
			return nil, err
		}
		*r.dst = b
	}
	for _, r := range []struct {
		dst *json.RawMessage
		v   any
		nil bool
	}{
		{&m.ApplicationPackageReferences, t.ApplicationPackageReferences, t.ApplicationPackageReferences == nil},
		{&m.OutputFiles, t.OutputFiles, t.OutputFiles == nil},
		{&m.ResourceFiles, t.ResourceFiles, t.ResourceFiles == nil},
	} {
		if r.nil {
			continue
		}
		b, err := json.Marshal(r.v)
		if err != nil {
			return nil, err
		}
		*r.dst = b
	}
	return json.Marshal(&m)
}

func raw[T any](dst *json.RawMessage, v *T) error {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	*dst = b
	return err
}

type taskJSON struct {
	AffinityInfo                 json.RawMessage    `json:"affinityInfo,omitempty"`
	ApplicationPackageReferences json.RawMessage    `json:"applicationPackageReferences,omitempty"`
	AuthenticationTokenSettings  json.RawMessage    `json:"authenticationTokenSettings,omitempty"`
	CommandLine                  *string            `json:"commandLine,omitempty"`
	Constraints                  *constraintsJSON   `json:"constraints,omitempty"`
	ContainerSettings            json.RawMessage    `json:"containerSettings,omitempty"`
	CreationTime                 *time.Time         `json:"creationTime,omitempty"`
	DependsOn                    json.RawMessage    `json:"dependsOn,omitempty"`
	DisplayName                  *string            `json:"displayName,omitempty"`
	ETag                         *string            `json:"eTag,omitempty"`
	EnvironmentSettings          []nameValueJSON    `json:"environmentSettings,omitempty"`
	ExecutionInfo                *execInfoJSON      `json:"executionInfo,omitempty"`
	ExitConditions               json.RawMessage    `json:"exitConditions,omitempty"`
	ID                           *string            `json:"id,omitempty"`
	LastModified                 *time.Time         `json:"lastModified,omitempty"`
	MultiInstanceSettings        json.RawMessage    `json:"multiInstanceSettings,omitempty"`
	NodeInfo                     *nodeInfoJSON      `json:"nodeInfo,omitempty"`
	OutputFiles                  json.RawMessage    `json:"outputFiles,omitempty"`
	PreviousState                *azbatch.TaskState `json:"previousState,omitempty"`
	PreviousStateTransitionTime  *time.Time         `json:"previousStateTransitionTime,omitempty"`
	RequiredSlots                *int32             `json:"requiredSlots,omitempty"`
	ResourceFiles                json.RawMessage    `json:"resourceFiles,omitempty"`
	State                        *azbatch.TaskState `json:"state,omitempty"`
	StateTransitionTime          *time.Time         `json:"stateTransitionTime,omitempty"`
	Stats                        json.RawMessage    `json:"stats,omitempty"`
	URL                          *string            `json:"url,omitempty"`
	UserIdentity                 *userIdentityJSON  `json:"userIdentity,omitempty"`
}

type constraintsJSON struct {
	MaxTaskRetryCount *int32  `json:"maxTaskRetryCount,omitempty"`
	MaxWallClockTime  *string `json:"maxWallClockTime,omitempty"`
	RetentionTime     *string `json:"retentionTime,omitempty"`
}

type nameValueJSON struct {
	Name  *string `json:"name,omitempty"`
	Value *string `json:"value,omitempty"`
}

type execInfoJSON struct {
	ContainerInfo   json.RawMessage              `json:"containerInfo,omitempty"`
	EndTime         *time.Time                   `json:"endTime,omitempty"`
	ExitCode        *int32                       `json:"exitCode,omitempty"`
	FailureInfo     *failureJSON                 `json:"failureInfo,omitempty"`
	LastRequeueTime *time.Time                   `json:"lastRequeueTime,omitempty"`
	LastRetryTime   *time.Time                   `json:"lastRetryTime,omitempty"`
	RequeueCount    *int32                       `json:"requeueCount,omitempty"`
	Result          *azbatch.TaskExecutionResult `json:"result,omitempty"`
	RetryCount      *int32                       `json:"retryCount,omitempty"`
	StartTime       *time.Time                   `json:"startTime,omitempty"`
}

type failureJSON struct {
	Category *azbatch.ErrorCategory `json:"category,omitempty"`
	Code     *string                `json:"code,omitempty"`
	Details  []nameValueJSON        `json:"details,omitempty"`
	Message  *string                `json:"message,omitempty"`
}

type nodeInfoJSON struct {
	AffinityID           *string `json:"affinityId,omitempty"`
	NodeID               *string `json:"nodeId,omitempty"`
	NodeURL              *string `json:"nodeUrl,omitempty"`
	PoolID               *string `json:"poolId,omitempty"`
	TaskRootDirectory    *string `json:"taskRootDirectory,omitempty"`
	TaskRootDirectoryURL *string `json:"taskRootDirectoryUrl,omitempty"`
}

type userIdentityJSON struct {
	AutoUser *autoUserJSON `json:"autoUser,omitempty"`
	Username *string       `json:"username,omitempty"`
}

type autoUserJSON struct {
	ElevationLevel *azbatch.ElevationLevel `json:"elevationLevel,omitempty"`
	Scope          *azbatch.AutoUserScope  `json:"scope,omitempty"`
}

// decodeTask reads a stored task document; the inverse of encodeTask, and
// like it several times faster than azbatch.Task.UnmarshalJSON for the
// common properties (TestDecodeTaskMatchesAzbatch keeps them equal).
func decodeTask(b []byte) (*azbatch.Task, error) {
	var m taskJSON
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	t := &azbatch.Task{
		CommandLine:                 m.CommandLine,
		CreationTime:                m.CreationTime,
		DisplayName:                 m.DisplayName,
		ID:                          m.ID,
		LastModified:                m.LastModified,
		PreviousState:               m.PreviousState,
		PreviousStateTransitionTime: m.PreviousStateTransitionTime,
		RequiredSlots:               m.RequiredSlots,
		State:                       m.State,
		StateTransitionTime:         m.StateTransitionTime,
		URL:                         m.URL,
	}
	if m.ETag != nil {
		t.ETag = (*azcore.ETag)(m.ETag)
	}
	if c := m.Constraints; c != nil {
		t.Constraints = &azbatch.TaskConstraints{MaxTaskRetryCount: c.MaxTaskRetryCount, MaxWallClockTime: c.MaxWallClockTime, RetentionTime: c.RetentionTime}
	}
	if m.EnvironmentSettings != nil {
		t.EnvironmentSettings = make([]azbatch.EnvironmentSetting, len(m.EnvironmentSettings))
		for i, e := range m.EnvironmentSettings {
			t.EnvironmentSettings[i] = azbatch.EnvironmentSetting{Name: e.Name, Value: e.Value}
		}
	}
	if ei := m.ExecutionInfo; ei != nil {
		t.ExecutionInfo = &azbatch.TaskExecutionInfo{
			EndTime: ei.EndTime, ExitCode: ei.ExitCode, LastRequeueTime: ei.LastRequeueTime, LastRetryTime: ei.LastRetryTime,
			RequeueCount: ei.RequeueCount, Result: ei.Result, RetryCount: ei.RetryCount, StartTime: ei.StartTime,
		}
		if f := ei.FailureInfo; f != nil {
			fi := &azbatch.TaskFailureInfo{Category: f.Category, Code: f.Code, Message: f.Message}
			if f.Details != nil {
				fi.Details = make([]azbatch.NameValuePair, len(f.Details))
				for i, d := range f.Details {
					fi.Details[i] = azbatch.NameValuePair{Name: d.Name, Value: d.Value}
				}
			}
			t.ExecutionInfo.FailureInfo = fi
		}
		if len(ei.ContainerInfo) > 0 {
			if err := json.Unmarshal(ei.ContainerInfo, &t.ExecutionInfo.ContainerInfo); err != nil {
				return nil, err
			}
		}
	}
	if n := m.NodeInfo; n != nil {
		t.NodeInfo = &azbatch.NodeInfo{AffinityID: n.AffinityID, NodeID: n.NodeID, NodeURL: n.NodeURL, PoolID: n.PoolID, TaskRootDirectory: n.TaskRootDirectory, TaskRootDirectoryURL: n.TaskRootDirectoryURL}
	}
	if u := m.UserIdentity; u != nil {
		t.UserIdentity = &azbatch.UserIdentity{Username: u.Username}
		if a := u.AutoUser; a != nil {
			t.UserIdentity.AutoUser = &azbatch.AutoUserSpecification{ElevationLevel: a.ElevationLevel, Scope: a.Scope}
		}
	}
	for _, r := range []struct {
		raw json.RawMessage
		dst any
	}{
		{m.AffinityInfo, &t.AffinityInfo},
		{m.ApplicationPackageReferences, &t.ApplicationPackageReferences},
		{m.AuthenticationTokenSettings, &t.AuthenticationTokenSettings},
		{m.ContainerSettings, &t.ContainerSettings},
		{m.DependsOn, &t.DependsOn},
		{m.ExitConditions, &t.ExitConditions},
		{m.MultiInstanceSettings, &t.MultiInstanceSettings},
		{m.OutputFiles, &t.OutputFiles},
		{m.ResourceFiles, &t.ResourceFiles},
		{m.Stats, &t.Stats},
	} {
		if len(r.raw) == 0 || string(r.raw) == "null" {
			continue
		}
		if err := json.Unmarshal(r.raw, r.dst); err != nil {
			return nil, err
		}
	}
	return t, nil
}
