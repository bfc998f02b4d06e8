package protocol

// Certificate is a certificate a node installs in its certs directory
// (NodeConfig.Certificates at registration, ReimageOrder on a reimage):
// <certs>/<algorithm>-<thumbprint>.cer or .pfx, and for a pfx with a
// password, the password in <...>.pfx.pw.
type Certificate struct {
	ThumbprintAlgorithm string `json:"thumbprintAlgorithm"`
	Thumbprint          string `json:"thumbprint"`
	Format              string `json:"format"` // cer | pfx
	Data                string `json:"data"`   // base64
	Password            string `json:"password,omitempty"`
}

// ReimageOrder is the body of /ops/reimage: the certificates the node has
// once wiped. With Keep (a reboot whose pool's certificates changed) the
// agent only installs the certificates.
type ReimageOrder struct {
	Certificates []Certificate `json:"certificates,omitempty"`
	Keep         bool          `json:"keep,omitempty"`
}
