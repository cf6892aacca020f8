import { writeFileSync } from 'node:fs';
import { DASHBOARD_FILE } from '../grafana-provisioning';
import { renderDashboard } from './dashboard';

/** `npm run dashboard`: regenerates the provisioned dashboard JSON from dashboard.ts. */
writeFileSync(DASHBOARD_FILE, renderDashboard());
console.log(`wrote ${DASHBOARD_FILE}`);
