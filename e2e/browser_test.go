package e2e

import "github.com/chromedp/chromedp"

var _ = chromedp.NewContext
