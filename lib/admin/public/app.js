// keygate admin page: vanilla JavaScript modules, no framework, no bundler, no inline script
// (CSP script-src 'self'). This entry wires the screens and starts; each screen is its own
// module (keys, key-create, key-details, users, roles, try, audit, login), on shared ones
// (api: the API client; dom: DOM helpers; state; router; actions; rules; format; expiry; secret).

import { $, $$ } from './dom.js'
import { registerViews, wireRouter } from './router.js'
import { boot, wireLogin } from './login.js'
import { renderKeys, wireKeys } from './keys.js'
import { wireKeyCreate } from './key-create.js'
import { wireKeyDetails } from './key-details.js'
import { renderUser, renderUsers, wireUsers } from './users.js'
import { renderRoles, wireRoles } from './roles.js'
import { leaveTry, renderTry, wireTry } from './try.js'
import { renderAudit, wireAudit } from './audit.js'
import { wireRuleHelp } from './rules.js'
import { wireSecret } from './secret.js'
import { wireFocus } from './focus.js'

registerViews({
  keys: { render: renderKeys },
  users: { render: renderUsers },
  user: { render: renderUser },
  roles: { render: renderRoles },
  try: { render: renderTry, leave: leaveTry },
  audit: { render: renderAudit },
})

function wireDialogs() {
  $('#skip-link').addEventListener('click', (e) => {
    e.preventDefault()
    $('#main').focus()
  })
  // Dialog buttons with data-close; links inside dialogs close them.
  for (const dlg of $$('dialog')) {
    dlg.addEventListener('click', (e) => {
      const t = e.target instanceof Element ? e.target : null
      if (!t) return
      if (t.closest('[data-close]')) dlg.close()
      else if (t.closest('a[href^="#/"]')) for (const d of $$('dialog[open]')) d.close()
    })
  }
}

wireRouter()
wireDialogs()
wireFocus()
wireLogin()
wireKeys()
wireKeyCreate()
wireRuleHelp()
wireSecret()
wireKeyDetails()
wireUsers()
wireRoles()
wireTry()
wireAudit()
boot()
