//! The admin calls on roles and users.

use std::collections::HashSet;

use super::types::{view_role, view_user};
use super::{internal, Actor, AuditAction, EffectiveRights, Expect, KeyStore, RoleView, UserInput, UserView};
use crate::audit::user_record;
use crate::error::{quote, Error, ErrorCode, Result};
use crate::model::{check_name, UserStatus, MAX_USER_ROLES};
use crate::registry::{Change, RoleRecord, UserRecord};
use crate::rule::{normalise_list, RuleUse};

impl KeyStore {
    // ---- roles -------------------------------------------------------------

    pub fn put_role(&self, name: &str, rights: &[String], actor: Actor) -> Result<RoleView> {
        self.put_role_expecting(name, rights, Expect::Any, actor)
    }

    /// [`KeyStore::put_role`] when the role is new or exists, as `expect` says.
    pub fn put_role_expecting(&self, name: &str, rights: &[String], expect: Expect, actor: Actor) -> Result<RoleView> {
        check_name("role name", name)?;
        let rights = normalise_list(rights, RuleUse::Rights)?;
        let mut tx = self.inner.write(AuditAction::PutRole, actor)?;
        tx.refuse_known_secrets("role name", [name], ErrorCode::InvalidArgument)?;
        match (expect, tx.role(name).is_some()) {
            (Expect::New, true) => return Err(Error::new(ErrorCode::Conflict, format!("a role named {} already exists", quote(name)))),
            (Expect::Existing, false) => return Err(Error::new(ErrorCode::UnknownRole, format!("no role named {}", quote(name)))),
            _ => {}
        }
        tx.refuse_known_secrets("a right", rights.iter().map(String::as_str), ErrorCode::InvalidRule)?;
        // The role as it is: nothing to write, nor to record in the audit trail.
        if tx.role(name).is_none_or(|old| old.rights.texts() != rights) {
            tx.commit(vec![Change::PutRole(RoleRecord { name: name.to_string(), rights })])?;
        }
        Ok(view_role(tx.role(name).ok_or_else(|| internal("the role just stored is missing"))?))
    }

    /// Deletes a role and takes it away from every user holding it.
    pub fn delete_role(&self, name: &str, actor: Actor) -> Result<bool> {
        let mut tx = self.inner.write(AuditAction::DeleteRole, actor)?;
        if tx.role(name).is_none() {
            return Ok(false);
        }
        tx.commit(vec![Change::DeleteRole(name.to_string())])?;
        Ok(true)
    }

    pub fn get_role(&self, name: &str) -> Result<Option<RoleView>> {
        self.inner.check_open()?;
        Ok(self.inner.registry.read().role(name).map(view_role))
    }

    /// All roles, by name.
    pub fn list_roles(&self) -> Result<Vec<RoleView>> {
        self.inner.check_open()?;
        let mut roles: Vec<RoleView> = self.inner.registry.read().roles().map(view_role).collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    // ---- users -------------------------------------------------------------

    pub fn put_user(&self, input: &UserInput, actor: Actor) -> Result<UserView> {
        self.put_user_expecting(input, Expect::Any, actor)
    }

    /// [`KeyStore::put_user`] when the user is new or exists, as `expect` says.
    pub fn put_user_expecting(&self, input: &UserInput, expect: Expect, actor: Actor) -> Result<UserView> {
        check_name("user id", &input.id)?;
        let status = UserStatus::parse(input.status.as_deref().unwrap_or("active"))?;
        if input.roles.len() > MAX_USER_ROLES {
            let given = input.roles.len();
            return Err(Error::new(ErrorCode::InvalidArgument, format!("{given} roles given; at most {MAX_USER_ROLES} are allowed")));
        }
        let rights = normalise_list(&input.rights, RuleUse::Rights)?;
        let mut tx = self.inner.write(AuditAction::PutUser, actor)?;
        tx.refuse_known_secrets("user id", [input.id.as_str()], ErrorCode::InvalidArgument)?;
        tx.refuse_known_secrets("a right", rights.iter().map(String::as_str), ErrorCode::InvalidRule)?;
        match (expect, tx.user(&input.id).is_some()) {
            (Expect::New, true) => {
                return Err(Error::new(ErrorCode::Conflict, format!("a user with id {} already exists", quote(&input.id))))
            }
            (Expect::Existing, false) => return Err(Error::new(ErrorCode::UnknownUser, format!("no user with id {}", quote(&input.id)))),
            _ => {}
        }
        let mut seen = HashSet::new();
        let mut roles = Vec::new();
        for role in &input.roles {
            if tx.role(role).is_none() {
                return Err(Error::new(ErrorCode::UnknownRole, format!("no role named {}", quote(role))));
            }
            if seen.insert(role.as_str()) {
                roles.push(role.clone());
            }
        }
        let record = UserRecord { id: input.id.clone(), status, rights, roles };
        // The user as it is: nothing to write, nor to record in the audit trail.
        if tx.user(&input.id).is_none_or(|old| user_record(old) != record) {
            tx.commit(vec![Change::PutUser(record)])?;
        }
        Ok(view_user(tx.user(&input.id).ok_or_else(|| internal("the user just stored is missing"))?))
    }

    pub fn get_user(&self, id: &str) -> Result<Option<UserView>> {
        self.inner.check_open()?;
        Ok(self.inner.registry.read().user(id).map(view_user))
    }

    /// The rights the decision grants the user (step 7), or `None` when there is no such user.
    pub fn effective_rights(&self, user_id: &str) -> Result<Option<EffectiveRights>> {
        self.inner.check_open()?;
        let registry = self.inner.registry.read();
        let Some(user) = registry.user(user_id) else { return Ok(None) };
        let own = user.rights.texts();
        let by_role: Vec<RoleView> = user.roles.iter().filter_map(|name| registry.role(name)).map(view_role).collect();
        let mut seen = HashSet::new();
        let all = own.iter().chain(by_role.iter().flat_map(|role| &role.rights)).filter(|right| seen.insert(*right)).cloned().collect();
        Ok(Some(EffectiveRights { own, by_role, all }))
    }

    /// All users, by id.
    pub fn list_users(&self) -> Result<Vec<UserView>> {
        self.inner.check_open()?;
        let mut users: Vec<UserView> = self.inner.registry.read().users().map(view_user).collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(users)
    }

    /// Deletes a user and all its keys; false when there was no such user.
    pub fn delete_user(&self, id: &str, actor: Actor) -> Result<bool> {
        let mut tx = self.inner.write(AuditAction::DeleteUser, actor)?;
        if tx.user(id).is_none() {
            return Ok(false);
        }
        tx.commit(vec![Change::DeleteUser(id.to_string())])?;
        Ok(true)
    }
}
