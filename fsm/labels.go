package fsm

// ValidateLabels checks label keys and values as blueprints and nodes use
// them; field prefixes the field named in the error.
func ValidateLabels(field string, labels map[string]string) *Error {
	return validateLabels(field, labels)
}
