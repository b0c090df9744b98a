package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/lmood/lmood/internal/testutil"
)

// chromium finds a Chromium to drive; without one the test skips (fails
// with LMOOD_REQUIRE_ORACLE=1: apt-get install chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.Missing(t, "no chromium on PATH (apt-get install -y chromium)")
	return ""
}

// TestPageInBrowser loads the page in headless Chromium, scores a prompt
// holding markup and a Cyrillic word, and checks the coloured tokens, that
// the markup is shown as text, that split characters are grouped, and
// that the tokens can be walked with the keyboard. It saves a screenshot
// (to $LMOOD_SCREENSHOT when set).
func TestPageInBrowser(t *testing.T) {
	exe := chromium(t)
	_, ts := newTestServer(t, Config{})
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1000, 720), chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	prompt := "<b>x</b> Кот & <script>alert(1)</script>"
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)),
		chromedp.SetValue(chromedp.CSS(`#text`), prompt),
		chromedp.Click(chromedp.CSS(`#score`)),
		chromedp.WaitVisible(chromedp.CSS(`#tokens .tok`)),
	); err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('status').textContent`))
		t.Fatalf("browser: %v (status %q)", err, status)
	}
	eval := func(js string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return n
	}
	nTok := eval(`document.querySelectorAll('#tokens .tok').length`)
	nBold := eval(`document.querySelectorAll('#tokens b').length`)
	nScript := eval(`document.querySelectorAll('#tokens script').length`)
	nColoured := eval(`[...document.querySelectorAll('#tokens .tok')].filter(s => s.style.backgroundColor !== '').length`)
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('tokens').textContent`))
	if err != nil {
		t.Fatal(err)
	}
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#tokens .tok').textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#tokens .tok`)), chromedp.KeyEvent(kb.ArrowRight), chromedp.KeyEvent(kb.ArrowRight)); err != nil {
		t.Fatal(err)
	}
	focusedIdx := eval(`[...document.querySelectorAll('#tokens .tok')].indexOf(document.activeElement)`)
	detail, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('detail').textContent`))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 = PNG
	if err != nil {
		t.Fatal(err)
	}
	if nTok < 5 || nColoured < nTok-1 {
		t.Errorf("%d tokens, %d coloured", nTok, nColoured)
	}
	if text != prompt {
		t.Errorf("tokens read %q, want the prompt %q literally", text, prompt)
	}
	if nBold != 0 || nScript != 0 {
		t.Errorf("markup in the prompt became elements: %d <b>, %d <script>", nBold, nScript)
	}
	// The tiny model splits each Cyrillic letter into two byte tokens: the
	// page shows letters, never replacement characters.
	if strings.ContainsRune(text, '\uFFFD') || nTok >= len([]byte(prompt)) {
		t.Errorf("split characters not grouped: %d spans for %q", nTok, text)
	}
	if focusedIdx != 2 || !strings.Contains(detail, "OOD") || first == "" {
		t.Errorf("arrow keys: focused token %d, want 2; detail %q", focusedIdx, detail)
	}
	path := filepath.Join(t.TempDir(), "serve.png")
	if p := os.Getenv("LMOOD_SCREENSHOT"); p != "" {
		path = p
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tokens, %d coloured; screenshot %s", nTok, nColoured, path)
}
