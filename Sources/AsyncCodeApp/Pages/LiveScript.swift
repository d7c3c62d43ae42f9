/// `/assets/live.js`: the pages' only script. It reads `data-live` and `data-after` from the page, follows the event
/// stream from that id (`/api/events` for the task list, `/api/tasks/{id}/events` for a task; EventSource resumes
/// by itself with `Last-Event-ID`), skips events the page already shows, and updates the page in place: status
/// labels, pull request links and new rows on the list; steps, log lines (auto-scrolled while the reader is at the
/// bottom), the status and the facts and results on a task's page. It builds elements with `textContent`, never
/// HTML from event data, and strips terminal colours from the log. Every page works without it.
enum LiveScript {
    static let text = #"""
        // asynccode: live updates for the server-rendered pages. No framework, no build step.
        (() => {
          'use strict';
          const KINDS = ['task.status_updated', 'task.completed', 'task.step', 'task.log', 'pr.status_updated', 'credits.updated'];
          const ENDED = ['completed', 'failed', 'cancelled'];
          const STREAMS = ['stdout', 'stderr', 'notice'];
          const ANSI = /\u001b\[[0-?]*[ -\/]*[@-~]|\u009b[0-?]*[ -\/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-_]/g;
          const stripANSI = (text) => String(text == null ? '' : text).replace(ANSI, '');
          const label = (status) => status.charAt(0).toUpperCase() + status.slice(1);

          function make(tag, className, text) {
            const element = document.createElement(tag);
            if (className) element.className = className;
            if (text != null) element.textContent = text;
            return element;
          }

          function firstLine(text, limit = 100) {
            const line = String(text || '').split('\n').find((part) => part.length > 0) || '';
            return line.length > limit ? line.slice(0, limit - 1) + '…' : line;
          }

          // Shows times in the reader's time zone (the server writes UTC).
          function localTimes(root) {
            for (const element of root.querySelectorAll('time[datetime]')) {
              const iso = element.getAttribute('datetime');
              const date = new Date(iso);
              if (Number.isNaN(date.getTime())) continue;
              element.title = iso;
              element.textContent = element.closest('.steps') ? date.toLocaleTimeString() : date.toLocaleString();
            }
          }

          function setStatus(badge, status) {
            if (!badge || !status) return;
            badge.className = badge.className.replace(/\bstatus-\S+/g, '').replace(/\s+/g, ' ').trim() + ' status-' + status;
            badge.dataset.status = status;
            badge.textContent = label(status);
          }

          function setPullRequest(cell, number, url) {
            if (!cell || !number) return;
            cell.textContent = '';
            if (/^https?:\/\//i.test(url || '')) {
              const link = make('a', null, '#' + number);
              link.href = url;
              cell.append(link);
            } else {
              cell.textContent = '#' + number;
            }
          }

          function showState(text, state) {
            const element = document.querySelector('[data-live-state]');
            if (!element) return;
            element.hidden = false;
            element.dataset.state = state;
            element.textContent = text;
          }

          // Follows `url` from event id `after`; runs handlers[kind](event, id) once per event, in order.
          function follow(url, after, handlers) {
            if (!('EventSource' in window)) return;
            let seen = after;
            const source = new EventSource(url + '?after=' + encodeURIComponent(after));
            const receive = (message) => {
              const id = Number(message.lastEventId || 0);
              if (id && id <= seen) return;
              let event;
              try { event = JSON.parse(message.data); } catch (error) { return; }
              if (id) seen = id;
              const handler = handlers[event.kind || message.type];
              if (handler) handler(event, id || Number(event.id) || 0);
            };
            for (const kind of KINDS) source.addEventListener(kind, receive);
            source.addEventListener('message', receive);
            source.addEventListener('open', () => showState('Live', 'live'));
            source.addEventListener('error', () => {
              showState(source.readyState === EventSource.CLOSED ? 'Live updates stopped: reload the page to see changes' : 'Reconnecting…', 'offline');
            });
            window.addEventListener('pagehide', () => source.close());
          }

          // The task list: statuses and pull requests change in place; new tasks that match the filters appear on top.
          function listPage(table) {
            const body = table.tBodies[0];
            const filterStatus = table.dataset.filterStatus || '';
            const filterRepository = table.dataset.filterRepository || '';
            const firstPage = table.dataset.firstPage === 'true';
            const fetching = new Map();
            const rowOf = (id) => body.querySelector('tr[data-task-id="' + Number(id) + '"]');
            const newest = () => Math.max(0, ...Array.from(body.querySelectorAll('tr[data-task-id]'), (row) => Number(row.dataset.taskId)));

            function buildRow(task) {
              const row = make('tr');
              row.dataset.taskId = String(task.id);
              const title = make('td');
              const link = make('a', 'task-title');
              link.href = '/tasks/' + Number(task.id);
              link.append(make('span', 'task-number', '#' + task.id), ' ' + firstLine(task.prompt));
              title.append(link, make('div', 'muted small', task.kind + (task.agent ? ' · ' + task.agent : '')));
              const repository = make('td', 'nowrap', task.repository ? task.repository.full_name : '');
              const statusCell = make('td');
              const badge = make('span', 'status');
              setStatus(badge, task.status);
              statusCell.append(badge);
              const pull = make('td');
              pull.dataset.pr = '';
              if (task.pull_request) setPullRequest(pull, task.pull_request.number, task.pull_request.url);
              const created = make('td', 'nowrap');
              const time = make('time', null, task.created_at);
              time.setAttribute('datetime', task.created_at);
              created.append(time);
              localTimes(created);
              row.append(title, repository, statusCell, pull, created);
              return row;
            }

            function insert(task, latest) {
              if (rowOf(task.id)) return;
              const status = (latest && latest.status) || task.status;
              if (filterRepository && String(task.repository && task.repository.id) !== filterRepository) return;
              if (filterStatus && status !== filterStatus) return;
              const row = buildRow(task);
              if (latest) apply(row, latest);
              const older = Array.from(body.querySelectorAll('tr[data-task-id]')).find((other) => Number(other.dataset.taskId) < Number(task.id));
              body.insertBefore(row, older || null);
              row.classList.add('fresh');
              const empty = body.querySelector('[data-empty]');
              if (empty) empty.remove();
            }

            function apply(row, data) {
              setStatus(row.querySelector('[data-status]'), data.status);
              if (data.pr_number) setPullRequest(row.querySelector('[data-pr]'), data.pr_number, data.pr_url);
            }

            function statusChanged(event) {
              const data = event.data || {};
              const row = rowOf(event.task_id);
              if (row) return apply(row, data);
              if (!firstPage || !event.task_id || event.task_id <= newest()) return;
              // A new task: what the API says of it, then the newest status heard while asking.
              if (fetching.has(event.task_id)) return fetching.set(event.task_id, data);
              fetching.set(event.task_id, null);
              fetch('/api/tasks/' + Number(event.task_id), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
                .then((response) => (response.ok ? response.json() : null))
                .then((task) => { if (task) insert(task, fetching.get(event.task_id)); })
                .catch(() => {})
                .finally(() => fetching.delete(event.task_id));
            }

            follow('/api/events', Number(table.dataset.after || 0), {
              'task.status_updated': statusChanged,
              'task.completed': statusChanged,
              'pr.status_updated': (event) => {
                const row = rowOf(event.task_id);
                if (row && event.data) setPullRequest(row.querySelector('[data-pr]'), event.data.number, event.data.url);
              },
            });
          }

          // A task's page: steps and log lines append, the status follows, facts and results are read again.
          function taskPage(root) {
            const taskID = Number(root.dataset.taskId);
            const steps = document.getElementById('steps');
            const log = document.getElementById('log');
            const badge = document.getElementById('task-status');
            const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 8;
            log.scrollTop = log.scrollHeight;
            let refreshing = null;

            function removeCancel() {
              const form = document.getElementById('cancel');
              if (form) form.remove();
            }

            // Reads this page again and swaps in its facts and results.
            function refresh() {
              if (refreshing) return;
              refreshing = setTimeout(() => {
                fetch(window.location.pathname, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
                  .then((response) => (response.ok ? response.text() : null))
                  .then((html) => {
                    if (!html) return;
                    const fresh = new DOMParser().parseFromString(html, 'text/html');
                    for (const id of ['facts', 'results']) {
                      const now = document.getElementById(id);
                      const next = fresh.getElementById(id);
                      if (now && next) {
                        const adopted = document.importNode(next, true);
                        localTimes(adopted);
                        now.replaceWith(adopted);
                      }
                    }
                    if (!fresh.getElementById('cancel')) removeCancel();
                  })
                  .catch(() => {})
                  .finally(() => { refreshing = null; });
              }, 250);
            }

            function statusChanged(event) {
              const data = event.data || {};
              setStatus(badge, data.status);
              if (data.status) steps.dataset.status = data.status;
              if (event.kind === 'task.completed' || ENDED.includes(data.status)) removeCancel();
              refresh();
            }

            const cancel = document.getElementById('cancel');
            if (cancel && window.fetch) {
              cancel.addEventListener('submit', (submit) => {
                submit.preventDefault();
                const button = cancel.querySelector('button');
                button.disabled = true;
                button.textContent = 'Cancelling…';
                fetch(cancel.dataset.api, { method: 'PUT', credentials: 'same-origin', headers: { Accept: 'application/json' } })
                  .then((response) => { if (!response.ok) throw new Error(String(response.status)); })
                  .catch(() => cancel.submit());
              });
            }

            follow('/api/tasks/' + taskID + '/events', Number(root.dataset.after || 0), {
              'task.status_updated': statusChanged,
              'task.completed': statusChanged,
              'pr.status_updated': refresh,
              'task.step': (event, id) => {
                if (id && steps.querySelector('[data-event-id="' + id + '"]')) return;
                const data = event.data || {};
                const item = make('li');
                item.dataset.eventId = String(id);
                const time = make('time', null, event.at || '');
                if (event.at) time.setAttribute('datetime', event.at);
                item.append(time, ' ', make('span', 'step-text', data.step || ''));
                if (data.detail) item.append(' ', make('span', 'step-detail', data.detail));
                steps.append(item);
                localTimes(item);
                const empty = steps.parentElement.querySelector('[data-empty]');
                if (empty) empty.remove();
              },
              'task.log': (event, id) => {
                if (id && log.querySelector('[data-event-id="' + id + '"]')) return;
                const data = event.data || {};
                const stick = atBottom();
                let text = stripANSI(data.text);
                if (!text.endsWith('\n')) text += '\n';
                const line = make('span', 'log-line log-' + (STREAMS.includes(data.stream) ? data.stream : 'stdout'), text);
                line.dataset.eventId = String(id);
                log.append(line);
                while (log.childElementCount > 5000) log.firstElementChild.remove();
                if (stick) log.scrollTop = log.scrollHeight;
              },
            });
          }

          // The credits page: a ledger entry reads the page again and swaps in the balances and ledgers.
          function creditsPage(root) {
            let pending = null;
            follow('/api/events', Number(root.dataset.after || 0), {
              'credits.updated': () => {
                if (pending) return;
                pending = setTimeout(() => {
                  fetch(window.location.pathname, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
                    .then((response) => (response.ok ? response.text() : null))
                    .then((html) => {
                      const next = html && new DOMParser().parseFromString(html, 'text/html').getElementById('credits');
                      if (!next) return;
                      const adopted = document.importNode(next, true);
                      localTimes(adopted);
                      root.replaceChildren(...adopted.childNodes);
                    })
                    .catch(() => {})
                    .finally(() => { pending = null; });
                }, 250);
              },
            });
          }

          localTimes(document);
          const credits = document.querySelector('[data-live="credits"]');
          if (credits) creditsPage(credits);
          const list = document.querySelector('[data-live="list"]');
          if (list) listPage(list);
          const task = document.querySelector('[data-live="task"]');
          if (task) taskPage(task);
        })();

        """#
}
