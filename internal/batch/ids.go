package batch

import "net/http"

// ValidateID checks an Azure Batch id (pool, job, task): 1 to maxLen
// characters of letters, digits, hyphens and underscores. prop names the
// property for the error.
func ValidateID(prop, id string, maxLen int) error {
	if id == "" {
		return MissingProperty(prop)
	}
	if len(id) > maxLen {
		return InvalidProperty(prop, id, "The id is too long.")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			continue
		}
		e := InvalidProperty(prop, id, "The id can contain only letters, digits, hyphens and underscores.")
		e.Code = "InvalidPropertyValue"
		e.Status = http.StatusBadRequest
		return e
	}
	return nil
}
