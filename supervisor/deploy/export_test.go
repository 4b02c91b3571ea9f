package deploy

// WithoutStandby is withoutStandby for the package's external tests.
var WithoutStandby = withoutStandby
