/// `/assets/app.css`: the pages' only stylesheet, in the spirit of GitHub's own pages (system fonts, boxes with
/// hairline borders, colour-coded status labels), with AA contrast, visible focus rings, a dark scheme and a
/// layout that folds to one column on small screens.
enum Stylesheet {
    static let text = #"""
        :root {
          --fg: #1f2328; --muted: #59636e; --bg: #ffffff; --subtle: #f6f8fa; --border: #d1d9e0; --accent: #0969da;
          --accent-fg: #ffffff; --danger: #cf222e; --topbar: #1f2328; --topbar-fg: #ffffff; --focus: #0969da;
          --pending-bg: #fff8c5; --pending-fg: #7d4e00; --running-bg: #ddf4ff; --running-fg: #0550ae;
          --completed-bg: #dafbe1; --completed-fg: #116329; --failed-bg: #ffebe9; --failed-fg: #a40e26;
          --cancelled-bg: #eff2f5; --cancelled-fg: #424a53; --log-bg: #0d1117; --log-fg: #e6edf3; --log-err: #ffa198;
          --log-notice: #79c0ff; --add-bg: #dafbe1; --del-bg: #ffebe9; --hunk-bg: #ddf4ff;
          color-scheme: light dark;
        }
        @media (prefers-color-scheme: dark) {
          :root {
            --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --subtle: #151b23; --border: #3d444d; --accent: #4493f8;
            --accent-fg: #0d1117; --danger: #f85149; --topbar: #010409; --focus: #4493f8;
            --pending-bg: #3b2f00; --pending-fg: #e3b341; --running-bg: #0c2d6b; --running-fg: #79c0ff;
            --completed-bg: #0f3a1e; --completed-fg: #56d364; --failed-bg: #4c1219; --failed-fg: #ff7b72;
            --cancelled-bg: #2d333b; --cancelled-fg: #c9d1d9; --log-bg: #010409;
            --add-bg: #12361f; --del-bg: #4a1a1e; --hunk-bg: #0c2d6b;
          }
        }
        *, *::before, *::after { box-sizing: border-box; }
        html { -webkit-text-size-adjust: 100%; }
        body { margin: 0; font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif;
               color: var(--fg); background: var(--bg); }
        a { color: var(--accent); text-decoration: none; }
        a:hover { text-decoration: underline; }
        :focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; border-radius: 3px; }
        code, pre, .log, .diff { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 12px; }
        code { background: var(--subtle); padding: .1em .35em; border-radius: 4px; }
        h1 { font-size: 24px; font-weight: 600; margin: 0; }
        h2 { font-size: 16px; font-weight: 600; margin: 0; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
        .skip-link { position: absolute; left: 8px; top: -40px; padding: 6px 10px; background: var(--bg); color: var(--accent); z-index: 10; }
        .skip-link:focus { top: 8px; }
        .container { max-width: 1200px; margin: 0 auto; padding: 0 16px; }
        .topbar { background: var(--topbar); color: var(--topbar-fg); }
        .topbar-inner { max-width: 1200px; margin: 0 auto; padding: 12px 16px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
        .topbar a { color: var(--topbar-fg); }
        .brand { font-weight: 600; font-size: 16px; }
        .nav { display: flex; gap: 4px; flex: 1; flex-wrap: wrap; }
        .nav a { padding: 4px 8px; border-radius: 6px; }
        .nav a:hover { background: rgba(255,255,255,.12); text-decoration: none; }
        .nav a[aria-current="page"] { background: rgba(255,255,255,.18); font-weight: 600; }
        .account { display: flex; gap: 8px; align-items: center; margin-left: auto; }
        .account form { margin: 0; }
        .avatar { border-radius: 50%; }
        main.container { padding-top: 24px; padding-bottom: 32px; min-height: 60vh; }
        main:focus { outline: none; }
        .footer { color: var(--muted); border-top: 1px solid var(--border); padding-top: 16px; padding-bottom: 24px; font-size: 12px; }
        .page-head { display: flex; justify-content: space-between; align-items: flex-end; gap: 16px; flex-wrap: wrap;
                     padding-bottom: 16px; margin-bottom: 16px; border-bottom: 1px solid var(--border); }
        .page-head form { margin: 0; }
        .breadcrumb { margin: 0 0 4px; color: var(--muted); }
        .btn { display: inline-block; padding: 5px 16px; font: inherit; font-weight: 500; line-height: 20px; color: var(--fg);
               background: var(--subtle); border: 1px solid var(--border); border-radius: 6px; cursor: pointer; text-decoration: none; }
        .btn:hover { text-decoration: none; filter: brightness(.97); }
        .btn:disabled { opacity: .6; cursor: default; }
        .btn-primary { background: #1f883d; border-color: #1a7f37; color: #ffffff; }
        .btn-danger { color: var(--danger); }
        .btn-danger:hover { background: var(--danger); color: #ffffff; }
        .btn-small { padding: 2px 10px; font-size: 12px; }
        .topbar .btn-small { color: var(--topbar-fg); background: transparent; border-color: rgba(255,255,255,.4); }
        .btn-large { padding: 9px 20px; font-size: 16px; }
        .box { border: 1px solid var(--border); border-radius: 6px; background: var(--bg); margin-bottom: 16px; overflow: hidden; }
        .box-title { padding: 10px 16px; background: var(--subtle); border-bottom: 1px solid var(--border); }
        .box-body { padding: 12px 16px; margin: 0; }
        .sub-title { font-size: 14px; margin: 0; padding: 12px 16px 4px; }
        .muted { color: var(--muted); }
        .small { font-size: 12px; }
        .nowrap { white-space: nowrap; }
        .prose { white-space: pre-wrap; overflow-wrap: anywhere; }
        .flash { padding: 12px 16px; border: 1px solid; border-radius: 6px; margin: 0 0 16px; }
        .flash-error { background: var(--failed-bg); color: var(--failed-fg); border-color: currentColor; }
        .blankslate { text-align: center; padding: 48px 16px; border: 1px dashed var(--border); border-radius: 6px; }
        .hero { max-width: 640px; margin: 48px auto; text-align: center; }
        .hero h1 { font-size: 32px; margin-bottom: 12px; }
        .lead { font-size: 16px; color: var(--muted); }
        .status { display: inline-block; padding: 0 10px; border-radius: 2em; font-size: 12px; font-weight: 500; line-height: 22px;
                  white-space: nowrap; border: 1px solid transparent; vertical-align: middle; }
        h1 .status { font-size: 14px; line-height: 26px; }
        .status-pending { background: var(--pending-bg); color: var(--pending-fg); }
        .status-running { background: var(--running-bg); color: var(--running-fg); }
        .status-completed { background: var(--completed-bg); color: var(--completed-fg); }
        .status-failed { background: var(--failed-bg); color: var(--failed-fg); }
        .status-cancelled { background: var(--cancelled-bg); color: var(--cancelled-fg); }
        .live-state { margin: 0 0 8px; color: var(--muted); font-size: 12px; }
        .live-state::before { content: "●"; margin-right: 6px; color: #1a7f37; }
        .live-state[data-state="offline"]::before { color: var(--danger); }
        .filters { display: flex; gap: 12px; align-items: flex-end; flex-wrap: wrap; margin-bottom: 16px; }
        .filters-clear { align-self: center; }
        .field { display: flex; flex-direction: column; gap: 4px; flex: 1; min-width: 180px; }
        .filters .field { flex: 0 1 240px; }
        .field-row { display: flex; gap: 16px; flex-wrap: wrap; }
        .stack > * + * { margin-top: 16px; }
        label { font-weight: 600; }
        .hint { margin: 0; color: var(--muted); font-size: 12px; }
        input, select, textarea { font: inherit; color: var(--fg); background: var(--bg); padding: 5px 12px; border: 1px solid var(--border);
                                  border-radius: 6px; width: 100%; }
        textarea { resize: vertical; min-height: 120px; }
        input:focus-visible, select:focus-visible, textarea:focus-visible { border-color: var(--focus); outline-offset: 0; }
        .table-wrap { overflow-x: auto; }
        table { width: 100%; border-collapse: collapse; }
        th, td { text-align: left; padding: 8px 16px; border-top: 1px solid var(--border); vertical-align: top; }
        thead th { border-top: 0; background: var(--subtle); font-weight: 600; color: var(--muted); font-size: 12px; }
        tbody tr:hover { background: var(--subtle); }
        .num { text-align: right; font-variant-numeric: tabular-nums; }
        .negative { color: var(--failed-fg); }
        .task-title { font-weight: 600; color: var(--fg); }
        .task-number { color: var(--muted); font-weight: 400; }
        tr.fresh { animation: fresh 2s ease-out; }
        @keyframes fresh { from { background: var(--pending-bg); } to { background: transparent; } }
        @media (prefers-reduced-motion: reduce) { tr.fresh { animation: none; } }
        .pager { margin-top: 16px; text-align: center; }
        .task-layout { display: grid; grid-template-columns: minmax(0, 1fr) 280px; gap: 24px; align-items: start; }
        .facts { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 8px 12px; }
        .facts dt { color: var(--muted); }
        .facts dd { margin: 0; overflow-wrap: anywhere; }
        .task-side .flash { margin-top: 16px; }
        .steps { list-style: none; margin: 0; padding: 8px 16px; }
        .steps li { padding: 4px 0 4px 18px; position: relative; }
        .steps li::before { content: ""; position: absolute; left: 2px; top: 11px; width: 8px; height: 8px; border-radius: 50%; background: var(--border); }
        .steps li:last-child::before { background: var(--accent); }
        .steps[data-status=completed] li:last-child::before { background: var(--completed-fg); }
        .steps[data-status=failed] li:last-child::before { background: var(--failed-fg); }
        .steps[data-status=cancelled] li:last-child::before { background: var(--cancelled-fg); }
        .steps time { color: var(--muted); font-size: 12px; margin-right: 6px; font-variant-numeric: tabular-nums; }
        .step-detail { color: var(--muted); }
        .log { margin: 0; padding: 12px 16px; background: var(--log-bg); color: var(--log-fg); max-height: 420px; min-height: 60px; overflow: auto;
               white-space: pre-wrap; overflow-wrap: anywhere; }
        .log:empty::before { content: "No output yet."; color: #9198a1; }
        .log-stderr { color: var(--log-err); }
        .log-notice { color: var(--log-notice); font-style: italic; }
        .checks th:first-child, .checks td:first-child { width: 40%; }
        .files { margin: 0; padding: 4px 16px 8px 32px; }
        .additions { color: var(--completed-fg); }
        .deletions { color: var(--failed-fg); }
        .diff { margin: 0; padding: 8px 0; overflow: auto; max-height: 600px; border-top: 1px solid var(--border); }
        .diff code { background: none; padding: 0; display: block; min-width: max-content; }
        .diff span { display: block; padding: 0 16px; white-space: pre; }
        .diff-add { background: var(--add-bg); }
        .diff-del { background: var(--del-bg); }
        .diff-hunk { background: var(--hunk-bg); color: var(--muted); }
        .diff-meta { font-weight: 600; }
        .balances { display: flex; gap: 32px; flex-wrap: wrap; }
        .balances div { display: flex; flex-direction: column; }
        .balances dt { color: var(--muted); font-size: 12px; }
        .balances dd { margin: 0; font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
        @media (max-width: 768px) {
          .task-layout { grid-template-columns: 1fr; }
          .task-side { order: -1; }
          th, td { padding: 6px 8px; }
          .account .login { display: none; }
          .nav { order: 3; flex-basis: 100%; }
        }
        """#
}
