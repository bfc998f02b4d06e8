package service

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// This file holds what the service knows of files that move between storage
// and nodes: validation of resourceFiles, outputFiles and
// applicationPackageReferences when they are added, and their translation
// into agent orders (signed URLs) when an attempt is dispatched. The moving
// itself is the agent's (internal/agent); storage is internal/storage.

// StorageLinks signs URLs of Kiln's own storage so that an agent, wherever
// it runs, needs nothing else to reach a container or blob.
type StorageLinks interface {
	// ContainerURL is an Azure Blob container URL with a SAS granting perms
	// (Azure's letters: r read, l list, w write, c create, a add, d delete),
	// in the account's own storage.
	ContainerURL(account, container, perms string, expiry time.Time) string
}

// Applications resolves application package references.
type Applications interface {
	// Resolve returns the order to install a package: the version (the
	// application's default version when version is empty), whether that is
	// the default version, a signed URL of its zip file and its revision. It
	// fails when the application or version does not exist.
	Resolve(account, applicationID, version string) (protocol.Package, error)
}

// signedURLLifetime is how long URLs signed for an attempt stay valid: long
// enough for the download before the task and the upload after it.
const signedURLLifetime = 7 * 24 * time.Hour

// containerNameRE is Azure's rule for container names.
var containerNameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-(?:[a-z0-9])){2,62}$`)

// validateResourceFiles checks resourceFiles of a task or start task (prop
// is the property path, for example "resourceFiles" or
// "startTask.resourceFiles").
func (s *Service) validateResourceFiles(prop string, rfs []azbatch.ResourceFile) error {
	for i, rf := range rfs {
		p := prop + "[" + strconv.Itoa(i) + "]"
		n := 0
		for _, v := range []*string{rf.AutoStorageContainerName, rf.StorageContainerURL, rf.HTTPURL} {
			if deref(v) != "" {
				n++
			}
		}
		if n != 1 {
			return batch.InvalidProperty(p, "", "Exactly one of autoStorageContainerName, storageContainerUrl and httpUrl must be specified.")
		}
		switch {
		case deref(rf.HTTPURL) != "":
			if err := validateHTTPURL(p+".httpUrl", *rf.HTTPURL); err != nil {
				return err
			}
			if deref(rf.FilePath) == "" {
				return batch.MissingProperty(p + ".filePath")
			}
			if rf.BlobPrefix != nil {
				return batch.InvalidProperty(p+".blobPrefix", *rf.BlobPrefix, "blobPrefix is valid only with autoStorageContainerName or storageContainerUrl.")
			}
		case deref(rf.StorageContainerURL) != "":
			if err := validateHTTPURL(p+".storageContainerUrl", *rf.StorageContainerURL); err != nil {
				return err
			}
		default:
			name := *rf.AutoStorageContainerName
			if !containerNameRE.MatchString(name) {
				return batch.InvalidProperty(p+".autoStorageContainerName", name, "Container names are 3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit.")
			}
			if s.cfg.Storage == nil {
				return batch.InvalidProperty(p+".autoStorageContainerName", name, "This server has no storage configured.")
			}
		}
		if fp := deref(rf.FilePath); fp != "" && (escapesDir(fp) || strings.ContainsRune(fp, 0)) {
			return batch.InvalidProperty(p+".filePath", fp, "The file path must stay inside the task working directory.")
		}
		if m := deref(rf.FileMode); m != "" {
			if v, err := strconv.ParseUint(m, 8, 32); err != nil || v > 0o7777 {
				return batch.InvalidProperty(p+".fileMode", m, "The file mode must be octal, for example 0755.")
			}
		}
		if rf.IdentityReference != nil {
			return batch.InvalidProperty(p+".identityReference", "", "Kiln has no managed identities: use a URL with a SAS token.")
		}
	}
	return nil
}

// validateHTTPURL accepts absolute http and https URLs.
func validateHTTPURL(prop, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return batch.InvalidProperty(prop, raw, "The value must be an absolute http or https URL.")
	}
	return nil
}

// validateOutputFiles checks a task's outputFiles.
func validateOutputFiles(ofs []azbatch.OutputFile) error {
	for i, of := range ofs {
		p := "outputFiles[" + strconv.Itoa(i) + "]"
		pat := deref(of.FilePattern)
		if pat == "" {
			return batch.MissingProperty(p + ".filePattern")
		}
		if err := validateFilePattern(p+".filePattern", pat); err != nil {
			return err
		}
		if of.Destination == nil || of.Destination.Container == nil {
			return batch.MissingProperty(p + ".destination.container")
		}
		c := of.Destination.Container
		if deref(c.ContainerURL) == "" {
			return batch.MissingProperty(p + ".destination.container.containerUrl")
		}
		if err := validateHTTPURL(p+".destination.container.containerUrl", *c.ContainerURL); err != nil {
			return err
		}
		if c.IdentityReference != nil {
			return batch.InvalidProperty(p+".destination.container.identityReference", "", "Kiln has no managed identities: use a container URL with a SAS token.")
		}
		if path := deref(c.Path); strings.ContainsRune(path, 0) || strings.HasPrefix(path, "/") {
			return batch.InvalidProperty(p+".destination.container.path", path, "The path must be a relative blob name.")
		}
		for j, h := range c.UploadHeaders {
			if strings.TrimSpace(deref(h.Name)) == "" {
				return batch.MissingProperty(p + ".destination.container.uploadHeaders[" + strconv.Itoa(j) + "].name")
			}
		}
		if of.UploadOptions != nil && of.UploadOptions.UploadCondition != nil {
			switch strings.ToLower(string(*of.UploadOptions.UploadCondition)) {
			case protocol.UploadOnSuccess, protocol.UploadOnFailure, protocol.UploadOnCompletion:
			default:
				return batch.InvalidProperty(p+".uploadOptions.uploadCondition", string(*of.UploadOptions.UploadCondition), "The value must be taskSuccess, taskFailure or taskCompletion.")
			}
		}
	}
	return nil
}

// validateFilePattern enforces that a pattern cannot reach outside the task
// directory: a relative pattern may start with one "../" (the task
// directory, where stdout.txt and stderr.txt are: Azure's documented
// "../std*.txt"), and no other ".." segment.
func validateFilePattern(prop, pat string) error {
	p := strings.ReplaceAll(pat, "\\", "/")
	if strings.ContainsRune(p, 0) {
		return batch.InvalidProperty(prop, pat, "The pattern contains a NUL character.")
	}
	rest := strings.TrimPrefix(p, "../")
	for _, seg := range strings.Split(rest, "/") {
		if seg == ".." {
			return batch.InvalidProperty(prop, pat, "The pattern must not leave the task directory: '..' is allowed only as the first segment.")
		}
	}
	if rest == "" {
		return batch.InvalidProperty(prop, pat, "The pattern names no file.")
	}
	return nil
}

// validatePackageRefs checks applicationPackageReferences for form; whether
// the packages exist is decided when they are installed (tasks) or when the
// pool is created (pools, see validatePoolPackages).
func validatePackageRefs(prop string, refs []azbatch.ApplicationPackageReference) error {
	for i, r := range refs {
		if strings.TrimSpace(deref(r.ApplicationID)) == "" {
			return batch.MissingProperty(prop + "[" + strconv.Itoa(i) + "].applicationId")
		}
	}
	return nil
}

// validatePoolPackages fails like Azure (409
// InvalidApplicationPackageReferences) when a pool names a package that does
// not exist.
func (s *Service) validatePoolPackages(account string, refs []azbatch.ApplicationPackageReference) error {
	if err := validatePackageRefs("applicationPackageReferences", refs); err != nil {
		return err
	}
	for _, r := range refs {
		if s.cfg.Applications == nil {
			return batch.Errorf(409, "InvalidApplicationPackageReferences", "This server has no applications.").With("applicationId", deref(r.ApplicationID))
		}
		if _, err := s.cfg.Applications.Resolve(account, appID(deref(r.ApplicationID)), deref(r.Version)); err != nil {
			return batch.Errorf(409, "InvalidApplicationPackageReferences", "One or more of the specified application package references are invalid: %v.", err).
				With("applicationId", deref(r.ApplicationID)).With("version", deref(r.Version))
		}
	}
	return nil
}

// appID takes the application name out of Azure's fully qualified form
// (/subscriptions/.../applications/{name}) that pools may use.
func appID(id string) string {
	if i := strings.LastIndex(id, "/applications/"); i >= 0 {
		return id[i+len("/applications/"):]
	}
	return id
}

// resourceFileOrders turns resourceFiles into agent orders, signing Kiln
// storage containers.
func (s *Service) resourceFileOrders(account string, rfs []azbatch.ResourceFile) []protocol.ResourceFile {
	if len(rfs) == 0 {
		return nil
	}
	out := make([]protocol.ResourceFile, 0, len(rfs))
	for _, rf := range rfs {
		o := protocol.ResourceFile{URL: deref(rf.HTTPURL), ContainerURL: deref(rf.StorageContainerURL),
			BlobPrefix: deref(rf.BlobPrefix), FilePath: deref(rf.FilePath), FileMode: deref(rf.FileMode)}
		if name := deref(rf.AutoStorageContainerName); name != "" && s.cfg.Storage != nil {
			o.ContainerURL = s.cfg.Storage.ContainerURL(account, name, "rl", s.now().Add(signedURLLifetime))
		}
		out = append(out, o)
	}
	return out
}

// outputFileOrders turns outputFiles into agent orders.
func outputFileOrders(ofs []azbatch.OutputFile) []protocol.OutputFile {
	if len(ofs) == 0 {
		return nil
	}
	out := make([]protocol.OutputFile, 0, len(ofs))
	for _, of := range ofs {
		o := protocol.OutputFile{FilePattern: deref(of.FilePattern), UploadCondition: protocol.UploadOnCompletion}
		if of.UploadOptions != nil && of.UploadOptions.UploadCondition != nil {
			o.UploadCondition = strings.ToLower(string(*of.UploadOptions.UploadCondition))
		}
		if of.Destination != nil && of.Destination.Container != nil {
			c := of.Destination.Container
			o.ContainerURL, o.Path = deref(c.ContainerURL), deref(c.Path)
			for _, h := range c.UploadHeaders {
				if o.UploadHeaders == nil {
					o.UploadHeaders = map[string]string{}
				}
				o.UploadHeaders[deref(h.Name)] = deref(h.Value)
			}
		}
		out = append(out, o)
	}
	return out
}

// packageOrders resolves application package references for an attempt. A
// reference that does not resolve becomes an order with Error set, so that
// the attempt fails on the node with ApplicationPackageError as on Azure.
func (s *Service) packageOrders(account string, refs ...[]azbatch.ApplicationPackageReference) []protocol.Package {
	var out []protocol.Package
	for _, list := range refs {
		for _, r := range list {
			id, v := appID(deref(r.ApplicationID)), deref(r.Version)
			p := protocol.Package{ApplicationID: id, Version: v, Error: "this server has no applications"}
			if s.cfg.Applications != nil {
				var err error
				if p, err = s.cfg.Applications.Resolve(account, id, v); err != nil {
					p = protocol.Package{ApplicationID: id, Version: v, Error: err.Error()}
				}
			}
			out = append(out, p)
		}
	}
	return out
}
