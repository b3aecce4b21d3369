package testlab

import (
	"context"
	"fmt"
)

func (l *Lab) startDC(ctx context.Context, spec *DCSpec) error {
	return fmt.Errorf("%w: DC not implemented yet", ErrUnavailable)
}
